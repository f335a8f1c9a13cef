// mailpipe's own test rules for the YARA engine of the `malware` enricher.
rule Mailpipe_Test_EICAR
{
    meta:
        description = "The EICAR anti-virus test file (harmless by design)"
    strings:
        $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
    condition:
        $eicar
}

rule Mailpipe_Suspicious_PowerShell_Download
{
    meta:
        description = "A PowerShell one-liner that downloads and runs code"
    strings:
        $a = "powershell" nocase
        $b = "DownloadString" nocase
        $c = "IEX" nocase
    condition:
        $a and $b and $c
}
