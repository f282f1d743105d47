import Models
import Training

/// `--data` as eval, score and select read it: as train does, cut on the right, but these have
/// no `--truncation`, so a set with no row left names `--max-length` as the way out (the shared
/// message said "--truncation left keeps the completions", a flag they refuse).
enum EvaluatedData {
    /// `maxLength` as given (the model's `context` caps it).
    static func load(_ path: String, tokenizer: any Tokenizer, maxLength: Int, context: Int, template: ChatTemplate,
                     lossScope: LossScope, textField: String) throws -> Dataset {
        do {
            return try Dataset(path: path, tokenizer: tokenizer, maxLength: min(maxLength, context), template: template, lossScope: lossScope,
                               textField: textField, leftTruncationHelps: false)
        } catch var e as DataError where e.longestUnfitted != nil {
            e.addMaxLengthHint(maxLength: maxLength, context: context)
            throw e
        }
    }
}
