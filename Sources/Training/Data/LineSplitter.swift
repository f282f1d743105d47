/// Cuts a byte stream into lines as the bytes arrive, holding at most one line of
/// `maxLineBytes` (+1 for a CR) in memory: a longer line is reported as `.tooLong` as soon as
/// it is known to be too long, and its remaining bytes are passed over, so a file that is one
/// endless line costs no memory, and a strict reader stops at once. The same code splits a buffer already in memory (`JSONLReader.parse`) and a
/// file read in chunks (`JSONLReader.read`), so both give the same lines and line numbers.
///
/// Lines end at LF; one CR before the LF is dropped; a leading UTF-8 BOM is skipped; lines of
/// JSON whitespace only (any length) are blank and not reported.
struct LineSplitter {
    enum Line {
        case text(ArraySlice<UInt8>)
        case tooLong
    }

    let maxLineBytes: Int
    private var line: [UInt8] = []
    private var overflowed = false
    /// The current line was already emitted as `.tooLong`.
    private var reported = false
    private var blank = true
    private var lineNumber = 0
    /// The stream's first bytes, held until three have arrived to tell whether they are a BOM.
    private var head: [UInt8] = []
    private var started = false
    private static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    /// Feeds the next bytes; `emit(lineNumber, line)` is called for every completed non-blank line.
    mutating func feed(_ bytes: ArraySlice<UInt8>, _ emit: (Int, Line) throws -> Void) rethrows {
        var rest = bytes
        if !started {
            let need = 3 - head.count
            head.append(contentsOf: rest.prefix(need))
            rest = rest.dropFirst(need)
            if head.count < 3 { return }
            started = true
            if head != Self.bom { try append(head[...], emit) }
        }
        try append(rest, emit)
    }

    /// Ends the stream: a last line without a newline is emitted too.
    mutating func finish(_ emit: (Int, Line) throws -> Void) rethrows {
        if !started {
            started = true
            try append(head[...], emit)  // fewer than three bytes: never a whole BOM
        }
        if !line.isEmpty || overflowed || !blank { try endLine(emit) }
    }

    private mutating func append(_ bytes: ArraySlice<UInt8>, _ emit: (Int, Line) throws -> Void) rethrows {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let newline = bytes[start...].firstIndex(of: 0x0A)
            let piece = bytes[start..<(newline ?? bytes.endIndex)]
            take(piece)
            if overflowed && !blank && !reported {
                reported = true
                try emit(lineNumber + 1, .tooLong)
            }
            guard let newline else { return }
            try endLine(emit)
            start = newline + 1
        }
    }

    private mutating func take(_ piece: ArraySlice<UInt8>) {
        if blank && !piece.allSatisfy(Self.isJSONWhitespace) { blank = false }
        if overflowed { return }
        if line.count + piece.count > maxLineBytes + 1 {
            overflowed = true
            line.removeAll()
        } else {
            line.append(contentsOf: piece)
        }
    }

    private mutating func endLine(_ emit: (Int, Line) throws -> Void) rethrows {
        lineNumber += 1
        defer { line.removeAll(keepingCapacity: line.count <= 1 << 16); overflowed = false; reported = false; blank = true }
        if blank || reported { return }
        var end = line.endIndex
        if !overflowed && end > 0 && line[end - 1] == 0x0D { end -= 1 }
        if overflowed || end > maxLineBytes { try emit(lineNumber, .tooLong); return }
        try emit(lineNumber, .text(line[..<end]))
    }

    static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }
}
