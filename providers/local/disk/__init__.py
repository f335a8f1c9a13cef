"""The folder store's disk engineering: durable writes (fsync, link, unnamed inodes) and filesystem facts."""
