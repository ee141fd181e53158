internal import CArchive
import L3AFModel

/// Writes reproducible gzip-compressed tar archives: entries sorted by path, every time zero, owner and
/// group root (0), modes 0755 for folders and 0644 for files, and no timestamp in the gzip header. The
/// same files always give the same bytes, so a sha256 names a build.
public enum ArchiveWriter {
    /// The `.tar.gz` bytes of `entries` (folders for every parent are added).
    public static func tarGz(_ entries: [ArchiveEntry], name: String = "archive") throws(ArchiveError) -> [UInt8] {
        var all: [String: ArchiveEntry] = [:]
        for entry in entries {
            all[entry.path] = entry
            var parent = Substring(entry.path)
            while let slash = parent.lastIndex(of: "/") {
                parent = parent[..<slash]
                if all[String(parent)] == nil {
                    all[String(parent)] = ArchiveEntry(path: String(parent), kind: .directory, permissions: 0o755)
                }
            }
        }
        guard let archive = archive_write_new() else { throw ArchiveError(archive: name, .writeFailed("out of memory")) }
        defer { archive_write_free(archive) }
        func failure() -> ArchiveError {
            ArchiveError(archive: name, .writeFailed(archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"))
        }
        guard archive_write_set_format_ustar(archive) == ARCHIVE_OK,
            archive_write_add_filter_gzip(archive) == ARCHIVE_OK,
            archive_write_set_filter_option(archive, "gzip", "timestamp", nil) == ARCHIVE_OK,
            archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK
        else { throw failure() }
        let sink = ByteSink()
        let context = Unmanaged.passUnretained(sink).toOpaque()
        let opened = archive_write_open2(archive, context, nil, { _, context, buffer, length in
            let sink = Unmanaged<ByteSink>.fromOpaque(context!).takeUnretainedValue()
            sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
            return length
        }, nil, nil)
        guard opened == ARCHIVE_OK else { throw failure() }
        for path in all.keys.sorted() {
            let item = all[path]!
            guard let entry = archive_entry_new() else { throw ArchiveError(archive: name, .writeFailed("out of memory")) }
            defer { archive_entry_free(entry) }
            archive_entry_set_pathname(entry, item.kind == .directory ? path + "/" : path)
            archive_entry_set_filetype(entry, item.kind == .directory ? EntryType.directory : EntryType.regular)
            archive_entry_set_perm(entry, item.kind == .directory ? 0o755 : (item.permissions & 0o111 != 0 ? 0o755 : 0o644))
            archive_entry_set_size(entry, la_int64_t(item.contents.count))
            archive_entry_set_mtime(entry, 0, 0)
            archive_entry_set_uid(entry, 0)
            archive_entry_set_gid(entry, 0)
            archive_entry_set_uname(entry, "root")
            archive_entry_set_gname(entry, "root")
            guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw failure() }
            if !item.contents.isEmpty {
                let written = item.contents.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
                guard written == item.contents.count else { throw failure() }
            }
        }
        guard archive_write_close(archive) == ARCHIVE_OK else { throw failure() }
        return sink.bytes
    }
}

/// Gathers what libarchive writes, for one archive on one thread.
private final class ByteSink {
    var bytes: [UInt8] = []
}
