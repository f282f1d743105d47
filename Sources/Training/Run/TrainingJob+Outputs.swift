import Distributed
import Foundation
import Models

/// What a run writes when it ends (TrainingJob): the final model (or adapter, or average),
/// the loss plot, and the end of a run a stop signal ended.
extension TrainingJob {
    /// The end of a run SIGUSR1 stopped: its checkpoint is written; the plot of the steps so far,
    /// and one line on stderr (even with --quiet: a job log should say why the run ended).
    static func stopped(after steps: Int, checkpoint: String, recipe: Recipe, sets: [String], lead: Bool, summary: Summary) -> Summary {
        Fatal.beforeTrainingAbort = nil
        Fatal.agree(lead ? writePlot(recipe, sets: sets) : nil, code: Fatal.Code.output)
        if lead {
            StandardError.write("sft-dist: stopped by SIGUSR1 after step \(steps) of \(recipe.steps): checkpoint \(checkpoint)/, no final model; continue with --resume latest (exit \(StopSignal.exitCode))\n")
        }
        var s = summary
        s.stoppedAfter = steps
        return s
    }

    /// The end of a run SIGUSR1 stopped during a scoring pass before its first step: nothing
    /// trained since the start (`resumed`: the checkpoint it resumed), nothing to save; one line on
    /// stderr. Another run's checkpoint is named: --out holds none, so `--resume latest` would start anew.
    static func stopped(scoring: ScoringStopped, resumed: Checkpointer.ResumePoint?, recipe: Recipe, lead: Bool, summary: Summary) -> Summary {
        Fatal.beforeTrainingAbort = nil
        let step = resumed?.step ?? 0
        if lead {
            let trained = resumed.map { "nothing trained since the checkpoint of step \($0.step)" } ?? "nothing trained"
            let again = resumed.map { $0.otherRun ? "--resume \($0.directory)" : "--resume latest" } ?? "--resume latest"
            StandardError.write("sft-dist: stopped by SIGUSR1 during the scoring pass before step \(step + 1) (\(scoring.what): \(scoring.done) of \(scoring.total)): \(trained), no checkpoint written; continue with \(again) (exit \(StopSignal.exitCode))\n")
        }
        var s = summary
        s.stoppedAfter = step
        return s
    }

    /// OUT/loss.svg from OUT/metrics.jsonl (nothing when it cannot be read); why it could not
    /// be written, or nil.
    static func writePlot(_ recipe: Recipe, sets: [String]) -> String? {
        let outputs = RunOutputs(recipe.out)
        guard let records = try? MetricsLog.read(path: outputs.metrics, nullsAsNaN: true) else { return nil }
        do {
            try SVGPlot.lossChart(records: records, title: plotTitle(recipe), sets: sets, objective: recipe.objective)
                .write(toFile: outputs.plot, atomically: true, encoding: .utf8)
            return nil
        } catch {
            return "\(outputs.plot): cannot write the plot (\(MessageText.reason(error, for: outputs.plot)))"
        }
    }

    /// The plot's title: the model (a long path by its last two parts), the objective, the
    /// options that change what the curves mean, and the learning rate and steps (two runs of
    /// one model and objective had the same title).
    static func plotTitle(_ r: Recipe) -> String {
        let parts = r.model.split(separator: "/")
        var t = "sft-dist: \(parts.count > 2 ? "…/" + parts.suffix(2).joined(separator: "/") : r.model), \(r.objective)"
        if r.selection != "none" { t += ", selection \(r.selection)" }
        if r.selfTrain != "none" { t += ", self-train \(r.selfTrain)" }
        if r.loraRank > 0 { t += ", LoRA r=\(r.loraRank)" }
        return t + ", lr \(String(format: "%g", r.lr)), \(r.steps) step\(r.steps == 1 ? "" : "s")"
    }

    /// `--ema`'s `OUT/model-ema/` and `--bema`'s `OUT/bema/`, in `OUT/model/`'s format (weights,
    /// or an adapter with LoRA), written by the coordinator; every rank agrees on a failure.
    static func saveAverages(_ setup: RunSetup, trainer: Trainer, lead: Bool) {
        let r = setup.recipe, outputs = RunOutputs(r.out)
        if let ema = trainer.ema {
            Fatal.agree(lead ? saveFinal(setup, model: ema.average, to: outputs.ema, steps: r.steps,
                                         extra: ["sft_dist_ema_decay": "\(r.ema)"]) : nil, code: Fatal.Code.output)
        }
        if let bema = trainer.bema {
            var why: String?
            if lead {
                // The trained model with its trainable tensors exchanged for the average while it
                // is saved (OUT/model is written; the frozen tensors are the initial ones), then back.
                bema.swap(with: setup.model.parameters)
                defer { bema.swap(with: setup.model.parameters) }
                let s = bema.schedule, last = s.lastUpdate(atOrBefore: r.steps).map(String.init) ?? "none"
                why = saveFinal(setup, model: setup.model, to: outputs.bema, steps: r.steps,
                                extra: ["sft_dist_bema_last_update_step": last, "sft_dist_bema_update_freq": "\(s.updateFreq)",
                                        "sft_dist_bema_update_after": "\(s.updateAfter)", "sft_dist_bema_lag": "\(s.lag)",
                                        "sft_dist_bema_ema_power": "\(s.emaPower)", "sft_dist_bema_bias_power": "\(s.biasPower)",
                                        "sft_dist_bema_multiplier": "\(s.multiplier)", "sft_dist_bema_min_ema_multiplier": "\(s.minEMAMultiplier)"])
            }
            Fatal.agree(why, code: Fatal.Code.output)
        }
    }

    /// Writes `model` (default: the trained one; the `--ema` average for `OUT/model-ema/`).
    static func saveFinal(_ setup: RunSetup, model: LanguageModel? = nil, to dir: String, steps: Int,
                          extra: [String: String] = [:]) -> String? {
        do {
            if let adapted = (model ?? setup.model) as? LoRAAdaptable, adapted.lora != nil {  // peft's adapter format
                try LoRAOutput.save(setup, model: adapted, to: dir, main: model == nil,
                                    metadata: ["sft_dist_steps": "\(steps)", "sft_dist_objective": setup.objective.name].merging(extra) { $1 })
                return nil
            }
            try ModelDirectory.save(model ?? setup.model, tokenizer: setup.tokenizer, to: dir,
                                    metadata: ["sft_dist_steps": "\(steps)", "sft_dist_objective": setup.objective.name].merging(extra) { $1 },
                                    format: setup.recipe.saveFormat)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
