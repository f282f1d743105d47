import Models
import Training

/// `--data` as eval, score and select read it: as train does, cut on the right, but these have
/// no `--truncation`, so a set with no row left names `--max-length` as the way out (the shared
/// message said "--truncation left keeps the completions", a flag they refuse).
enum EvaluatedData {
    static func load(_ path: String, tokenizer: any Tokenizer, maxLength: Int, context: Int, template: ChatTemplate,
                     lossScope: LossScope, textField: String) throws -> Dataset {
        do {
            return try Dataset(path: path, tokenizer: tokenizer, maxLength: maxLength, template: template, lossScope: lossScope,
                               textField: textField, leftTruncationHelps: false)
        } catch var e as DataError where e.longestUnfitted != nil {
            let longest = e.longestUnfitted!
            e.description += longest <= context ? "; --max-length \(longest) keeps them whole"
                : maxLength < context ? "; --max-length \(context), the model's context, keeps the most"
                : "; \(context) tokens is the model's context"
            throw e
        }
    }
}
