extension ObjectiveRegistry {
    /// cpo's arguments, TRL's `CPOConfig` names and defaults: `beta` 0.1, `loss_type` sigmoid
    /// (hinge, ipo, simpo; `alphapo` is TRL's shorthand for simpo with cpo_alpha 0),
    /// `label_smoothing` 0 (read by sigmoid and simpo), `cpo_alpha` 1, `simpo_gamma` 0.5 (read
    /// by simpo), `alpha` 0 (AlphaPO's reward shape, any loss type). A setting its loss type
    /// does not read is refused, as it would do nothing (TRL ignores it).
    static func makeCPO(_ args: inout ObjectiveArgs) throws -> CPOObjective {
        let given = args.values["loss_type"] ?? "sigmoid"
        let alphapo = given == "alphapo"
        guard let type = alphapo ? .simpo : CPOObjective.LossType(rawValue: given) else {
            throw ObjectiveError("objective cpo: unknown loss_type \(RecipeError.quote(given)); known: \(CPOObjective.LossType.allCases.map(\.rawValue).joined(separator: ", ")), alphapo")
        }
        // alphapo resolves as what it is (loss_type simpo, cpo_alpha 0), so either spelling
        // resumes the other's checkpoint; a cpo_alpha other than 0 beside it is refused (TRL
        // overrides it silently).
        _ = args.string("loss_type", default: "sigmoid"); _ = args.noted("loss_type", type.rawValue)
        if alphapo, let a = args.values["cpo_alpha"], Double(decimal: a) != 0 {
            throw ObjectiveError("objective cpo: loss_type alphapo is simpo with cpo_alpha 0 (TRL's shorthand), not cpo_alpha \(RecipeError.quote(a)); give loss_type=simpo to set cpo_alpha")
        }
        try args.refuseUnread([("label_smoothing", ["sigmoid", "simpo"]), ("simpo_gamma", ["simpo"])], by: type.rawValue, given: given)
        args.used.formUnion(["label_smoothing", "simpo_gamma", "cpo_alpha"])
        let reads = { (t: [CPOObjective.LossType]) in t.contains(type) }
        return try CPOObjective(beta: try args.float("beta", default: 0.1),
                                labelSmoothing: reads([.sigmoid, .simpo]) ? try args.float("label_smoothing", default: 0) : 0,
                                lossType: type, cpoAlpha: try args.float("cpo_alpha", default: alphapo ? 0 : 1),
                                simpoGamma: type == .simpo ? try args.float("simpo_gamma", default: 0.5) : 0.5,
                                alpha: try args.float("alpha", default: 0))
    }
}

extension ObjectiveArgs {
    /// A setting its loss type does not read (`readers`: each key with the loss types that read
    /// it), refused as it would do nothing (TRL ignores it): cpo's and tpo's. `type` is the loss
    /// type that trains, `given` as the user named it (cpo's alphapo is simpo).
    func refuseUnread(_ readers: [(key: String, types: [String])], by type: String, given: String) throws {
        for (key, types) in readers where !types.contains(type) && values[key] != nil {
            throw ObjectiveError("objective \(objective): \(key) is read by loss_type \(types.joined(separator: " and ")); with loss_type \(given) it does nothing")
        }
    }
}
