/// A tokenizer whose vocabulary is the 256 byte values plus four ChatML specials.
///
/// It needs no vocabulary file, so the tiny from-scratch models, the embedded task dataset
/// and the tests can run anywhere; every string round-trips exactly, including emoji,
/// because a token is simply a UTF-8 byte. Ids: 0...255 bytes, then
/// `<|endoftext|>`=256, `<|im_start|>`=257, `<|im_end|>`=258, `<|pad|>`=259.
public final class ByteTokenizer: Tokenizer, @unchecked Sendable {
    /// The name a config or checkpoint uses to ask for this tokenizer.
    public static let name = "bytes"

    /// The chat template a run on `messages` data recorded because it trained with another
    /// than ChatML (`--chat-template plain`), saved in `sft_dist_tokenizer.json` and the exported
    /// tokenizer_config.json; nil: ChatML, the layout of this vocabulary's specials.
    public private(set) var chatTemplateText: String?

    /// Makes `jinja` the template this tokenizer's files are saved with. Set once, at start-up,
    /// before anything reads it.
    public func recordChatTemplate(_ jinja: String) { chatTemplateText = jinja }

    public static let endOfText: Int32 = 256
    public static let imStart: Int32 = 257
    public static let imEnd: Int32 = 258
    public static let pad: Int32 = 259

    public let vocabSize = 260
    public var eosId: Int32 { Self.endOfText }
    public var padId: Int32 { Self.pad }

    public let specialTokens: [String: Int32] = [
        "<|endoftext|>": ByteTokenizer.endOfText,
        "<|im_start|>": ByteTokenizer.imStart,
        "<|im_end|>": ByteTokenizer.imEnd,
        "<|pad|>": ByteTokenizer.pad,
    ]

    /// Specials as byte strings, longest first, so that if one special were a prefix of
    /// another the longer one wins.
    private let specialsByLength: [(bytes: [UInt8], id: Int32)]
    private let specialFirstBytes: Set<UInt8>
    private let stringOfSpecial: [Int32: String]

    public init(chatTemplate: String? = nil) {
        chatTemplateText = chatTemplate
        let byLength = specialTokens
            .map { (bytes: Array($0.key.utf8), id: $0.value) }
            .sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        specialsByLength = byLength
        specialFirstBytes = Set(byLength.compactMap { $0.bytes.first })
        stringOfSpecial = Dictionary(uniqueKeysWithValues: specialTokens.map { ($0.value, $0.key) })
    }

    public func encodePlain(_ text: String) -> [Int32] {
        text.utf8.map { Int32($0) }
    }

    public func encode(_ text: String) -> [Int32] {
        let bytes = Array(text.utf8)
        var ids: [Int32] = []
        ids.reserveCapacity(bytes.count)
        var i = 0
        scan: while i < bytes.count {
            if specialFirstBytes.contains(bytes[i]) {
                for special in specialsByLength where bytes.count - i >= special.bytes.count {
                    if bytes[i..<(i + special.bytes.count)].elementsEqual(special.bytes) {
                        ids.append(special.id)
                        i += special.bytes.count
                        continue scan
                    }
                }
            }
            ids.append(Int32(bytes[i]))
            i += 1
        }
        return ids
    }

    /// Bytes are gathered across consecutive ids before decoding, because one character is
    /// usually several tokens; an id outside the vocabulary decodes to U+FFFD rather than
    /// trapping, since generation from an untrained model can produce anything.
    public func decode(_ ids: [Int32]) -> String {
        var out = ""
        var pending: [UInt8] = []
        func flush() {
            if !pending.isEmpty {
                out += String(decoding: pending, as: UTF8.self)
                pending.removeAll(keepingCapacity: true)
            }
        }
        for id in ids {
            if id >= 0 && id < 256 {
                pending.append(UInt8(id))
            } else {
                flush()
                out += stringOfSpecial[id] ?? "\u{FFFD}"
            }
        }
        flush()
        return out
    }

    public func specialTokenId(_ text: String) -> Int32? {
        specialTokens[text]
    }
}
