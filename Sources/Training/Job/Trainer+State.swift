/// What of the trainer lives across steps, registered once as stateful components
/// (`Training/State/`), so checkpoints save, verify and restore it without knowing the trainer:
/// the count of skipped steps, the batch source (or producer), the optimizer, the old-policy
/// snapshot, the objective when it keeps state of its own, the `--l2-init` anchor, the
/// `--ema` average, `--bema`'s θ_0, EMA and average, the reference as sync_ref_model or
/// bema_update_ref_model moved it, and token-clean's fixed scores. Everything else a step uses is
/// a pure function of (seed, step, rank) or of the recipe.
extension Trainer {
    func registerState() {
        components.register(skipped)
        // A producer (or the batch source inside the demonstration producer) with state beyond
        // words registers itself; otherwise its words do.
        let inner = (source as? DemonstrationProducer)?.source
        components.register(source as? StatefulComponent ?? inner as? StatefulComponent ?? BatchSourceState(source))
        components.register(OptimizerState(optimizer))
        if let old = oldPolicy { components.register(ParameterSnapshot("old_policy", parameters: old.parameters)) }
        if let stateful = objective as? StatefulComponent { components.register(stateful) }
        for part in objective.statefulParts { components.register(part) }
        if let l2 = l2Init { components.register(l2.snapshot) }
        if let ema { components.register(ema.snapshot) }
        for snapshot in bema?.snapshots ?? [] { components.register(snapshot) }
        if let bemaReference { components.register(bemaReference.snapshot) }
        if let referenceSync { components.register(referenceSync.snapshot) }
        if let tokenLabelsState { components.register(tokenLabelsState) }
        if let values = (source as? RolloutProducer)?.optimalValues { components.register(values) }
    }
}

/// Steps skipped for non-finite values (`nan_policy: skip`): at most the steps done; and how
/// many of the last steps in a row were skipped (`nan_skip_limit`; absent from checkpoints
/// written before it: 0).
final class SkippedSteps: StatefulComponent {
    let stateName = "trainer"
    var count = 0, inARow = 0
    func saveState() -> ComponentState { ComponentState(values: ["skipped_steps": .int(count), "skipped_in_a_row": .int(inARow)]) }
    func restoreState(_ state: ComponentState, step: Int) throws {
        count = try state.int("skipped_steps", in: 0...step)
        inARow = state.values["skipped_in_a_row"] == nil ? 0 : try state.int("skipped_in_a_row", in: 0...count)
    }
}
