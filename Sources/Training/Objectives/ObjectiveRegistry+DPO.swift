extension ObjectiveRegistry {
    /// dpo's arguments, TRL's `DPOConfig` names and defaults: `beta` 0.1, `loss_type` sigmoid (or
    /// a comma-separated list of types, summed with `loss_weights`, 1 each by default),
    /// `label_smoothing` 0 (read by robust and exo_pair), `discopop_tau` 0.05 (read by discopop),
    /// `f_divergence_type` reverse_kl with `f_alpha_divergence_coef` 0.5 (read by alpha_divergence),
    /// `ld_alpha` unset, `use_weighting` false.
    /// loss_type and f_divergence_type are recorded only away from their defaults, so a run
    /// resolves the arguments it did before they existed, given at the default or not (a
    /// checkpoint's are compared on resume); a type's own setting under another type is
    /// refused, as it would do nothing (TRL 1.16's sigmoid ignores label_smoothing).
    static func makeDPO(_ args: inout ObjectiveArgs) throws -> DPOObjective {
        let beta = try args.float("beta", default: 0.1)
        let types = try lossTypes(&args)
        let typeName = types.map(\.rawValue).joined(separator: ",")
        var smoothing: Float = 0, tau: Float = 0.05
        if types.contains(where: \.readsLabelSmoothing) {
            smoothing = try args.float("label_smoothing", default: 0)
        } else if args.values["label_smoothing"] != nil {
            throw ObjectiveError("objective dpo: label_smoothing is read by loss_type robust and exo_pair; with loss_type \(typeName) it does nothing")
        }
        if types.contains(where: \.readsTau) {
            tau = try args.float("discopop_tau", default: 0.05)
        } else if args.values["discopop_tau"] != nil {
            throw ObjectiveError("objective dpo: discopop_tau is read by loss_type discopop; with loss_type \(typeName) it does nothing")
        }
        // f_divergence_type, recorded only away from reverse_kl; its α read only under alpha_divergence.
        let divergenceName = defaultUnrecorded("f_divergence_type", "reverse_kl", &args)
        guard let divergence = DPODivergence(rawValue: divergenceName) else {
            throw ObjectiveError("objective dpo: unknown f_divergence_type \(RecipeError.quote(divergenceName)); known: \(DPODivergence.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var alpha: Float = 0.5
        if divergence == .alphaDivergence {
            alpha = try args.float("f_alpha_divergence_coef", default: 0.5)
        } else if args.values["f_alpha_divergence_coef"] != nil {
            throw ObjectiveError("objective dpo: f_alpha_divergence_coef is read by f_divergence_type alpha_divergence; with \(divergenceName) it does nothing")
        }
        args.used.formUnion(["label_smoothing", "discopop_tau", "f_alpha_divergence_coef"])
        return try DPOObjective(beta: beta, lossTypes: types, lossWeights: try lossWeights(&args), labelSmoothing: smoothing, discopopTau: tau,
                                divergence: divergence, alphaCoef: alpha, ldAlpha: try args.optionalFloat("ld_alpha"),
                                useWeighting: try useWeighting(&args))
    }

    /// TRL's `loss_type`: one type or several, comma-separated (`sigmoid,sft`; a YAML list is
    /// read the same way), recorded only away from sigmoid, as `type,type`.
    static func lossTypes(_ args: inout ObjectiveArgs) throws -> [DPOLoss] {
        args.used.insert("loss_type")
        let given = args.values["loss_type"] ?? "sigmoid"
        let names = given.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let types = try names.map { name in
            if name.isEmpty { throw ObjectiveError("objective dpo: loss_type=\(RecipeError.quote(given)) holds an empty type") }
            guard let type = DPOLoss(rawValue: name) else {
                let more = ["aot", "aot_unpaired"].contains(name) ? " (\(name), which TRL has too, is not here)" : ""
                throw ObjectiveError("objective dpo: unknown loss_type \(RecipeError.quote(name))\(more); known: \(DPOLoss.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return type
        }
        if types != [.sigmoid] { _ = args.noted("loss_type", types.map(\.rawValue).joined(separator: ",")) } else { args.shownDefaults["loss_type"] = "sigmoid" }
        return types
    }

    /// TRL's `loss_weights`, one per loss type, comma-separated; recorded only when one is not 1.
    static func lossWeights(_ args: inout ObjectiveArgs) throws -> [Double]? {
        args.used.insert("loss_weights")
        guard let given = args.values["loss_weights"] else { return nil }
        let weights = try given.split(separator: ",", omittingEmptySubsequences: false).map { part -> Double in
            let text = part.trimmingCharacters(in: .whitespaces)
            guard let w = Double(decimal: text), w.isFinite, Float(w).isFinite else {
                throw ObjectiveError("objective dpo: loss_weights=\(RecipeError.quote(given)): \(text.isEmpty ? "an empty weight" : RecipeError.quote(text)) is not a finite number")
            }
            return w
        }
        if weights.contains(where: { $0 != 1 }) { _ = args.noted("loss_weights", weights.map { "\($0)" }.joined(separator: ",")) }
        return weights
    }

    /// TRL's `use_weighting` (WPO), recorded only when true, as the defaults above.
    static func useWeighting(_ args: inout ObjectiveArgs) throws -> Bool {
        let given = defaultUnrecorded("use_weighting", "false", &args)
        guard let on = Bool(given) else {
            throw ObjectiveError("objective dpo: use_weighting must be true or false (got \(RecipeError.quote(given)))")
        }
        return on
    }

    /// `key`'s value, recorded among the resolved arguments only when it is not `value`.
    static func defaultUnrecorded(_ key: String, _ value: String, _ args: inout ObjectiveArgs) -> String {
        args.used.insert(key)
        guard let given = args.values[key], given != value else { args.shownDefaults[key] = value; return value }
        return args.string(key, default: value)
    }
}
