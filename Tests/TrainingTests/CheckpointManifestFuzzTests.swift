import Foundation
import XCTest
import Models
import TensorCore
@testable import Training

/// Seeded mutations of a valid checkpoint manifest, verified against a checkpoint directory
/// that, in a third of the cases, also holds what an attacker would plant: a symlinked
/// directory leading outside, a symlink to /dev/zero, a FIFO; always a directory and a
/// symlink that stays inside. Every case must
/// verify or throw a `CheckpointError` naming the checkpoint in one short line — never trap,
/// hang, read outside the checkpoint, or accept a file that is not the one listed.
/// 2000 cases by default; more with SFT_DIST_FUZZ_CASES (seed: SFT_DIST_FUZZ_SEED). With
/// SFT_DIST_FUZZ_LAST=FILE each case's bytes are written there first, so a crash leaves its input.
final class CheckpointManifestFuzzTests: XCTestCase {
    static let planted = ["out/secret", "zero", "fifo", "model", "inlink", "../outside/secret", "/etc/passwd",
                          "", ".", "model/../state.json", "model//config.json", "./state.json", "state.json\0x",
                          "nope.json", "model/config.json/", String(repeating: "a/", count: 300) + "b", "日本/🙂",
                          "state.json\n1 1 0000000000000000"]

    /// Bytes and tokens that tend to break JSON or the manifest's fields.
    static let interesting: [String] = ["\"", "\\", "{", "}", "[", "]", ":", ",", "\n", "\0", "\u{FF}", "null", "-1", "1e999",
                                        "18446744073709551616", "9223372036854775807", "\"path\"", "\"size\"", "\"xxh64\"",
                                        "\"files\"", "\"step\"", "\"checksum\"", "\"version\"", "\"format\"", "[]", "{}", "\\u0000"]

    func testFuzzedManifestsVerifyOrFailWithoutReadingOutside() throws {
        let env = ProcessInfo.processInfo.environment
        let cases = env["SFT_DIST_FUZZ_CASES"].flatMap { Int($0) } ?? 2000
        var rng = SplitMix64(seed: env["SFT_DIST_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x3A_11_FE57)
        let fm = FileManager.default
        // In memory when the machine has /dev/shm: a million cases of small file writes and
        // symlink changes would otherwise wait on the disk's journal.
        let base = fm.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : fm.temporaryDirectory
        let root = base.appendingPathComponent("sft-dist-manifest-fuzz-\(getpid())").path
        let dir = root + "/ckpt", outside = root + "/outside"
        try? fm.removeItem(atPath: root)
        try fm.createDirectory(atPath: dir + "/model", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        try "{\"step\": 3}".write(toFile: dir + "/state.json", atomically: false, encoding: .utf8)
        try "{\"n_embd\": 8}".write(toFile: dir + "/model/config.json", atomically: false, encoding: .utf8)
        try Data((0..<300).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: dir + "/optimizer.safetensors"))
        let secret = "secret-bytes-outside"
        try secret.write(toFile: outside + "/secret", atomically: false, encoding: .utf8)
        let valid = try CheckpointManifest.make(directory: dir, step: 3)
        XCTAssertEqual(valid.files.count, 3)
        // Planted after the manifest was made, as an attacker would: an in-checkpoint symlink
        // always, the hostile entries (which make any manifest fail) in about half the cases.
        try fm.createSymbolicLink(atPath: dir + "/inlink", withDestinationPath: "state.json")
        var planted = false
        func plant(_ on: Bool) throws {
            guard on != planted else { return }
            if on {
                try fm.createSymbolicLink(atPath: dir + "/out", withDestinationPath: outside)
                try fm.createSymbolicLink(atPath: dir + "/zero", withDestinationPath: "/dev/zero")
                XCTAssertEqual(mkfifo(dir + "/fifo", 0o600), 0)
            } else {
                for name in ["out", "zero", "fifo"] { try fm.removeItem(atPath: dir + "/" + name) }
            }
            planted = on
        }
        let secretHash = XXHash64.hex(XXHash64.hash(Array(secret.utf8)))
        // The outside file listed with its true size and hash: only the path check refuses it.
        let secretEntry = CheckpointManifest.File(path: "out/secret", size: secret.utf8.count, xxh64: secretHash)
        let genuine = Dictionary(uniqueKeysWithValues: valid.files.map { (resolved(dir + "/" + $0.path)!, $0) })
        let manifestPath = dir + "/" + CheckpointManifest.fileName
        let lastCase = env["SFT_DIST_FUZZ_LAST"]

        var accepted = 0, refused = 0, reachedFiles = 0
        let start = Date()
        for i in 0..<cases {
            let label = "case \(i)"
            var bytes: [UInt8]
            if Int.random(in: 0..<5, using: &rng) < 2 {  // 40 %: raw bytes
                bytes = valid.encoded
                for _ in 0...Int.random(in: 0...3, using: &rng) { mutateBytes(&bytes, &rng) }
            } else {  // 60 %: fields, mostly re-sealed
                var m = valid
                for _ in 0...Int.random(in: 0...2, using: &rng) { mutateFields(&m, &rng) }
                if Int.random(in: 0..<8, using: &rng) == 0 { m.files.insert(secretEntry, at: Int.random(in: 0...m.files.count, using: &rng)) }
                if Int.random(in: 0..<10, using: &rng) > 0 {  // re-sealed, so the file checks are reached
                    m.checksum = XXHash64.hex(XXHash64.hash(Array(CheckpointManifest.listing(step: m.step, files: m.files).utf8)))
                }
                bytes = m.encoded
                if Int.random(in: 0..<5, using: &rng) == 0 { mutateBytes(&bytes, &rng) }
            }
            if let lastCase { try Data(bytes).write(to: URL(fileURLWithPath: lastCase)) }
            try plant((i / 16) % 3 == 0)  // in runs of 16 cases, so the entries change seldom
            // Through the file (resolution, hashing) whenever the parse alone would pass.
            let parsed = try? CheckpointManifest.parse(Data(bytes), path: manifestPath)
            do {
                let m: CheckpointManifest
                if parsed != nil || i % 50 == 0 {
                    try Data(bytes).write(to: URL(fileURLWithPath: manifestPath))
                    reachedFiles += 1
                    m = try CheckpointManifest.verify(directory: dir)
                } else {
                    m = try CheckpointManifest.parse(Data(bytes), path: manifestPath)
                }
                // Accepted: every listed file is a genuine one (by any path or in-checkpoint
                // symlink that resolves to it) with its genuine size and hash.
                for f in m.files {
                    let g = resolved(dir + "/" + f.path).flatMap { genuine[$0] }
                    XCTAssertNotNil(g, "\(label): accepted \(f.path.debugDescription)")
                    XCTAssertEqual(f.size, g?.size, label)
                    XCTAssertEqual(f.xxh64, g?.xxh64, label)
                }
                XCTAssertFalse(planted, "\(label): accepted with a symlink out, a FIFO and /dev/zero in the checkpoint")
                accepted += 1
            } catch let e as CheckpointError {
                let text = e.description
                XCTAssertTrue(text.hasPrefix(dir + "/"), "\(label): \(text)")
                XCTAssertFalse(text.contains("\n"), "\(label): \(text.debugDescription)")
                XCTAssertLessThan(text.utf8.count, 300 + dir.utf8.count, "\(label): \(text)")
                XCTAssertFalse(text.contains(secretHash), "\(label): the outside file was hashed: \(text)")
                refused += 1
            } catch {
                XCTFail("\(label): unexpected error type \(type(of: error)): \(error)")
            }
        }
        XCTAssertEqual(accepted + refused, cases)
        if cases >= 500 {
            XCTAssertGreaterThan(accepted, cases / 100, "too few mutated manifests still verify")
            XCTAssertGreaterThan(reachedFiles, cases / 4, "too few cases reach the file checks")
        }
        print(String(format: "checkpoint manifest fuzz: %d cases (%d accepted, %d refused, %d through the files) in %.1f s",
                     cases, accepted, refused, reachedFiles, Date().timeIntervalSince(start)))
    }

    /// Found by this campaign: 513 `[` at the end of the input make Foundation's JSONDecoder
    /// trap (SIGILL) instead of throwing; the manifest parser refuses deep nesting first.
    func testNestingPastFoundationsLimitIsRefusedNotATrap() {
        for n in [511, 512, 513, 514, 5000] {
            let bytes = Array(#"{"files": "#.utf8) + [UInt8](repeating: 0x5B, count: n)
            XCTAssertThrowsError(try CheckpointManifest.parse(Data(bytes), path: "m.json"), "\(n)") {
                XCTAssertTrue("\($0)".hasPrefix("m.json: corrupt manifest"), "\($0)")
            }
        }
        XCTAssertEqual(JSONNesting.depth(Array(#"{"a": ["[[[", {"b": "\"]"}]}"#.utf8), limit: 10), 3)
    }

    private func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    private func mutateFields(_ m: inout CheckpointManifest, _ rng: inout SplitMix64) {
        let n = m.files.count
        switch Int.random(in: 0..<9, using: &rng) {
        case 0, 1:  // a planted or odd path
            guard n > 0 else { fallthrough }
            m.files[Int.random(in: 0..<n, using: &rng)].path = Self.planted.randomElement(using: &rng)!
        case 2:  // an extra entry
            m.files.append(.init(path: Self.planted.randomElement(using: &rng)!, size: Int.random(in: -2...400, using: &rng),
                                 xxh64: String(format: "%016llx", UInt64.random(in: 0...UInt64.max, using: &rng))))
        case 3:  // a size off by a little or a lot
            guard n > 0 else { return }
            let s = [-1, 0, 1, 299, 301, Int.max, Int.min, Int.random(in: 0...1000, using: &rng)].randomElement(using: &rng)!
            m.files[Int.random(in: 0..<n, using: &rng)].size = s
        case 4:  // a hash changed, malformed or empty
            guard n > 0 else { return }
            m.files[Int.random(in: 0..<n, using: &rng)].xxh64 = ["", "0", "ZZZZZZZZZZZZZZZZ", String(repeating: "f", count: 16),
                                                                 String(repeating: "0", count: 64)].randomElement(using: &rng)!
        case 5:  // drop or duplicate an entry
            guard n > 0 else { return }
            let k = Int.random(in: 0..<n, using: &rng)
            if Bool.random(using: &rng) { m.files.remove(at: k) } else { m.files.append(m.files[k]) }
        case 6:  // the step
            m.step = [-1, 0, Int.max, Int.min, Int.random(in: 0...100, using: &rng)].randomElement(using: &rng)!
        case 7:  // format or version
            if Bool.random(using: &rng) { m.format = ["", "sft-dist", String(repeating: "x", count: 2000)].randomElement(using: &rng)! }
            else { m.version = [0, 2, -1, Int.max].randomElement(using: &rng)! }
        default:  // a path swapped with another entry's
            guard n > 1 else { return }
            let a = Int.random(in: 0..<n, using: &rng), b = Int.random(in: 0..<n, using: &rng)
            (m.files[a].path, m.files[b].path) = (m.files[b].path, m.files[a].path)
        }
    }

    private func mutateBytes(_ b: inout [UInt8], _ rng: inout SplitMix64) {
        func at(_ extra: Int = 0) -> Int { Int.random(in: 0...max(0, b.count - 1 + extra), using: &rng) }
        switch Int.random(in: 0..<7, using: &rng) {
        case 0:  // bit flips
            guard !b.isEmpty else { return }
            for _ in 0..<Int.random(in: 1...4, using: &rng) { b[at()] ^= 1 << UInt8.random(in: 0..<8, using: &rng) }
        case 1:  // insert an interesting token
            b.insert(contentsOf: Array(Self.interesting.randomElement(using: &rng)!.utf8), at: min(at(1), b.count))
        case 2:  // delete a short range
            guard !b.isEmpty else { return }
            let s = at()
            b.removeSubrange(s..<min(b.count, s + Int.random(in: 1...12, using: &rng)))
        case 3:  // truncate
            b = Array(b.prefix(at()))
        case 4:  // duplicate a range elsewhere
            guard b.count > 2 else { return }
            let s = at(), e = min(b.count, s + Int.random(in: 1...80, using: &rng))
            b.insert(contentsOf: b[s..<e], at: min(at(1), b.count))
        case 5:  // deep nesting
            let n = Int.random(in: 10...2000, using: &rng)
            b.insert(contentsOf: [UInt8](repeating: 0x5B, count: n), at: min(at(1), b.count))
        default:  // a random byte
            guard !b.isEmpty else { return }
            b[at()] = UInt8.random(in: 0...255, using: &rng)
        }
    }
}
