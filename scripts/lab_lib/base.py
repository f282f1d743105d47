"""The base models: one pretraining run on a broad built-in mix, cached under the output
directory. The strong base is its final model; the weak base is the checkpoint written at
`weak_step` of the same run (its model/ directory is a loadable model)."""
import os
import resource
import time

from sftdist import write_json, read_json, flag_args


def pretrain(lab, sft):
    spec = lab["base"]
    data = sft.make_data(spec["data"])
    config = os.path.join(sft.root, spec["config"])
    args = ["--config", config, "--data", data, "--steps", str(spec["steps"]), "--seed", str(spec["seed"]),
            "--save-every", str(spec["weak_step"]), "--keep-last", "0"] + flag_args(spec.get("flags", {}), {})
    run_dir = os.path.join(sft.out, f"base-{sft.key(args)}")
    info_path = os.path.join(run_dir, "lab-base.json")
    # The model paths are not stored: the output directory may have been moved since.
    strong = os.path.join(run_dir, "model")
    weak = os.path.join(run_dir, "checkpoints", f"step-{spec['weak_step']:06d}", "model")
    if not os.path.exists(info_path):
        start, cpu = time.time(), children_cpu()
        # --resume latest: a base run killed part-way continues from its last checkpoint
        # (sft-dist refuses a fresh run into a directory that holds checkpoints).
        sft.train(run_dir, args + ["--resume", "latest"])
        if not os.path.isdir(weak):
            raise SystemExit(f"lab: the base run wrote no checkpoint at step {spec['weak_step']} ({weak})")
        write_json(info_path, {"steps": spec["steps"], "weak_step": spec["weak_step"],
                               "seconds": time.time() - start, "cpu_s": children_cpu() - cpu,
                               "data": spec["data"]})
    info = read_json(info_path)
    info.update({"strong": strong, "weak": weak})
    return info


def children_cpu():
    """CPU seconds of the waited-for child processes so far (mpirun and its ranks)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
