// One Node engine run: `node runner.mjs ENGINE LISTFILE REPS` (ENGINE: mailparser | postal-mime).
// Speaks the same JSON-lines protocol as bench/worker.py. Full extraction: headers, addresses, subject, date,
// text/html, every attachment's bytes hashed with sha256, message/rfc822 attachments re-parsed (recursed).
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { simpleParser } from 'mailparser';
import PostalMime from 'postal-mime';

// html<->text conversion and link detection are extra work the other engines do not do: switched off.
// mailparser hashes every attachment itself (md5 by default): asked for sha256, its checksum is the hash.
const SIMPLE_OPTS = {
  skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true, checksumAlgo: 'sha256',
};
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');

async function mailparserExtract(buf) {
  const m = await simpleParser(buf, SIMPLE_OPTS);
  void [m.headers, m.from, m.to, m.cc, m.replyTo, m.subject, m.date, m.text, m.html];
  let n = 0, size = 0;
  for (const att of m.attachments) {
    if (att.contentType === 'message/rfc822') {
      const [k, s] = await mailparserExtract(att.content);
      n += k; size += s;
      continue;
    }
    if (att.checksum?.length !== 64) sha(att.content);
    n += 1; size += att.content.length;
  }
  return [n, size];
}

async function postalExtract(buf) {
  const m = await PostalMime.parse(buf);
  void [m.headers, m.from, m.to, m.cc, m.replyTo, m.subject, m.date, m.text, m.html];
  let n = 0, size = 0;
  for (const att of m.attachments) {
    const bytes = new Uint8Array(att.content);
    if (att.mimeType === 'message/rfc822') {
      const [k, s] = await postalExtract(bytes);
      n += k; size += s;
      continue;
    }
    sha(bytes); n += 1; size += bytes.length;
  }
  return [n, size];
}

const ENGINES = { 'mailparser': mailparserExtract, 'postal-mime': postalExtract };
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

async function main() {
  const [engine, listfile, reps] = process.argv.slice(2);
  const extract = ENGINES[engine];
  const paths = JSON.parse(readFileSync(listfile, 'utf8'));
  try { await extract(Buffer.from('From: a@example.com\r\nSubject: warm\r\n\r\nhello\r\n')); } catch { /* warm-up */ }
  for (let p = 0; p < Number(reps); p++) {
    let total = 0n;
    for (let i = 0; i < paths.length; i++) {
      let raw = readFileSync(paths[i]);
      let err = null, res = [0, 0];
      const t0 = process.hrtime.bigint();
      try { res = await extract(raw); } catch (e) { err = `${e?.name}: ${String(e?.message).slice(0, 200)}`; }
      total += process.hrtime.bigint() - t0;
      raw = null;
      if (p === 0) emit({ i, ok: err === null, err, n: res[0], bytes: res[1] });
    }
    emit({ pass: p, t: Number(total) / 1e9 });
  }
}

main();
