import CArchive
import CBPF
import CCurl
import Testing

/// Each C library links and answers: a missing -dev package or a broken pkg-config fails here, loudly.
@Suite struct SystemLibraryTests {
    @Test func libbpfLinksAndReportsItsVersion() {
        let version = String(cString: libbpf_version_string())
        #expect(version.hasPrefix("v1."), "libbpf \(version)")
        #expect(libbpf_major_version() >= 1)
    }

    @Test func libcurlLinksAndReportsItsVersion() throws {
        // CURLVERSION_NOW is a macro Swift does not import; CURLVERSION_ELEVENTH is what 7.88 defines it as.
        let info = try #require(curl_version_info(CURLVERSION_ELEVENTH))
        let version = String(cString: info.pointee.version)
        #expect(info.pointee.version_num >= 0x07_44_00, "libcurl \(version) is at least 7.68")
        let protocols = sequence(state: info.pointee.protocols) { cursor -> String? in
            guard let p = cursor?.pointee else { return nil }
            cursor = cursor?.advanced(by: 1)
            return String(cString: p)
        }
        #expect(Set(protocols).isSuperset(of: ["http", "https", "file"]))
    }

    @Test func libarchiveLinksAndReportsItsVersion() {
        let version = String(cString: archive_version_string())
        #expect(version.hasPrefix("libarchive 3."), "\(version)")
        #expect(archive_version_number() >= 3_004_000)
    }
}
