import Foundation
import XCTest
@testable import Training

/// A manifest lists paths; a hostile checkpoint directory can make a listed path lead
/// anywhere. Every path is resolved, symlinks included, and checked to stay inside the
/// checkpoint and to be a regular file before anything opens it.
final class CheckpointManifestPathTests: XCTestCase {
    private var root: String!
    private var dir: String { root + "/ckpt" }
    private var outside: String { root + "/outside" }

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sft-dist-manifest-paths-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/model", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "{}".write(toFile: dir + "/state.json", atomically: false, encoding: .utf8)
        try "secret-bytes".write(toFile: outside + "/secret", atomically: false, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// A manifest with a valid checksum over `files`, as an attacker could write one.
    private func writeManifest(_ files: [CheckpointManifest.File]) throws {
        let sum = XXHash64.hex(XXHash64.hash(Array(CheckpointManifest.listing(step: 1, files: files).utf8)))
        let m = CheckpointManifest(step: 1, files: files, checksum: sum)
        try Data(m.encoded).write(to: URL(fileURLWithPath: dir + "/manifest.json"))
    }

    /// Runs verify on another thread so a read that blocks (a FIFO) or never ends (/dev/zero)
    /// fails the test instead of hanging it.
    private func verifyError(seconds: Double = 10) -> String? {
        final class Box: @unchecked Sendable { var message: String? = "still running" }
        let box = Box(), done = DispatchSemaphore(value: 0), d = dir
        Thread.detachNewThread {
            do { _ = try CheckpointManifest.verify(directory: d); box.message = nil } catch { box.message = "\(error)" }
            done.signal()
        }
        if done.wait(timeout: .now() + seconds) == .timedOut { return "verify did not finish in \(seconds) s" }
        return box.message
    }

    private func entry(_ path: String) -> CheckpointManifest.File {
        CheckpointManifest.File(path: path, size: 12, xxh64: "0000000000000000")
    }

    func testSymlinkedDirectoryLeavingTheCheckpointIsRefusedUnread() throws {
        try FileManager.default.createSymbolicLink(atPath: dir + "/etcdir", withDestinationPath: outside)
        try writeManifest([entry("etcdir/secret")])
        let secret = try XXHash64.hashFile(outside + "/secret")
        let e = verifyError() ?? "accepted"
        XCTAssertTrue(e.contains("etcdir/secret") && e.contains("leaves the checkpoint"), e)
        XCTAssertFalse(e.contains(XXHash64.hex(secret.hash)), "the outside file was hashed: \(e)")
    }

    func testSymlinkedFileLeavingTheCheckpointIsRefused() throws {
        try FileManager.default.createSymbolicLink(atPath: dir + "/model/w.safetensors", withDestinationPath: outside + "/secret")
        try writeManifest([entry("model/w.safetensors")])
        let e = verifyError() ?? "accepted"
        XCTAssertTrue(e.contains("leaves the checkpoint"), e)
        XCTAssertFalse(e.contains("12 bytes") || e.contains("checksum"), e)
    }

    func testSymlinkToDevZeroIsRefused() throws {
        try FileManager.default.createSymbolicLink(atPath: dir + "/zero", withDestinationPath: "/dev/zero")
        try writeManifest([entry("zero")])
        let e = verifyError() ?? "accepted"
        XCTAssertTrue(e.contains("zero") && e.contains("leaves the checkpoint"), e)
    }

    func testFIFOAndDirectoryEntriesAreRefused() throws {
        XCTAssertEqual(mkfifo(dir + "/fifo", 0o600), 0)
        try writeManifest([entry("fifo")])
        let e = verifyError() ?? "accepted"
        if e.hasPrefix("verify did not finish") {  // unblock the reader so the thread ends
            let fd = open(dir + "/fifo", O_WRONLY | O_NONBLOCK); if fd >= 0 { close(fd) }
        }
        XCTAssertTrue(e.contains("fifo: not a regular file"), e)
        try writeManifest([entry("model")])
        let d = verifyError() ?? "accepted"
        XCTAssertTrue(d.contains("model: not a regular file"), d)
    }

    /// A symlink that stays inside the checkpoint is fine: the checkpoint is still self-contained.
    func testSymlinkInsideTheCheckpointIsAccepted() throws {
        try FileManager.default.createSymbolicLink(atPath: dir + "/model/state-link", withDestinationPath: "../state.json")
        let h = try XXHash64.hashFile(dir + "/state.json")
        try writeManifest([CheckpointManifest.File(path: "model/state-link", size: 2, xxh64: XXHash64.hex(h.hash))])
        XCTAssertNil(verifyError())
    }

    /// The manifest itself: a FIFO or a link to /dev/zero must not block or read forever.
    func testManifestThatIsNotARegularFileIsRefused() throws {
        XCTAssertEqual(mkfifo(dir + "/manifest.json", 0o600), 0)
        let e = verifyError() ?? "accepted"
        if e.hasPrefix("verify did not finish") {
            let fd = open(dir + "/manifest.json", O_WRONLY | O_NONBLOCK); if fd >= 0 { close(fd) }
        }
        XCTAssertTrue(e.contains("manifest.json: not a regular file"), e)
    }

    /// Files the manifest does not list are read too (the model loader opens a chat template
    /// if there is one): no symlink anywhere under the checkpoint may lead outside it, and no
    /// FIFO may sit in it.
    func testUnlistedSymlinksOutAndFIFOsAreRefused() throws {
        let h = try XXHash64.hashFile(dir + "/state.json")
        try writeManifest([CheckpointManifest.File(path: "state.json", size: 2, xxh64: XXHash64.hex(h.hash))])
        try "notes".write(toFile: dir + "/model/README.txt", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir + "/model/inside", withDestinationPath: "../state.json")
        XCTAssertNil(verifyError(), "plain extra files and symlinks that stay inside are harmless")
        try FileManager.default.createSymbolicLink(atPath: dir + "/model/chat_template.jinja", withDestinationPath: outside + "/secret")
        let e = verifyError() ?? "accepted"
        XCTAssertTrue(e.contains("model/chat_template.jinja") && e.contains("leaves the checkpoint"), e)
        try FileManager.default.removeItem(atPath: dir + "/model/chat_template.jinja")
        XCTAssertEqual(mkfifo(dir + "/model/tokenizer.json", 0o600), 0)
        let f = verifyError() ?? "accepted"
        XCTAssertTrue(f.contains("model/tokenizer.json: not a regular file"), f)
    }

    func testPathsAreNotEchoedWhole() throws {
        try writeManifest([entry(String(repeating: "../", count: 2000) + "x")])
        let e = verifyError() ?? "accepted"
        XCTAssertTrue(e.contains("leaves the checkpoint"), e)
        XCTAssertLessThan(e.utf8.count, 300 + dir.utf8.count, e)
    }
}
