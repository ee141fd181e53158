import Foundation
import Testing
@testable import L3AFClient

@Suite struct HTTPClientTests {
    @Test func readsFileURLs() async throws {
        let file = FileManager.default.temporaryDirectory.appending(path: "l3af-http-\(UUID().uuidString)")
        try Data("hello".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let response = try await HTTPClient().send(HTTPRequest(url: file.absoluteString))
        #expect(response.text == "hello")
    }

    @Test func refusesProtocolsNotAllowed() async {
        await #expect {
            try await HTTPClient().send(HTTPRequest(url: "ftp://127.0.0.1/x"))
        } throws: { ($0 as! TransportError).code == "protocol-not-allowed" }
    }

    @Test func saysWhenNothingListens() async {
        await #expect {
            try await HTTPClient().send(HTTPRequest(url: "http://127.0.0.1:1/index.json"))
        } throws: { error in
            let e = error as! TransportError
            return e.code == "connect-failed" && e.hint != nil
        }
    }

    @Test func cutsOffAnOversizedResponse() async throws {
        let file = FileManager.default.temporaryDirectory.appending(path: "l3af-big-\(UUID().uuidString)")
        try Data(count: 100_000).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        var client = HTTPClient()
        client.maximumResponseBytes = 10_000
        await #expect {
            try await client.send(HTTPRequest(url: file.absoluteString))
        } throws: { ($0 as! TransportError).code == "response-too-large" }
    }
}
