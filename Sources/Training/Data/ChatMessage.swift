import Foundation

/// One conversation turn of a `messages` record.
public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable, CaseIterable {
        case system, user, assistant
    }
    public var role: Role
    public var content: String
    /// An assistant turn's `reasoning_content` (Qwen3's template writes it in the turn's
    /// `<think>` block instead of splitting `content`: `ThinkingReplies`); other templates
    /// ignore it, as transformers' do.
    public var reasoning: String?

    public init(role: Role, content: String, reasoning: String? = nil) {
        self.role = role
        self.content = content
        self.reasoning = reasoning
    }
}
