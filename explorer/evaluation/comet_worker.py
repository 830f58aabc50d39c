"""The COMET worker: run by the Python of an environment that has ``unbabel-comet`` (``requirements-comet.txt``),
never imported by the explorer package (it imports nothing from it, so it runs where explorer's pins are absent).

    python comet_worker.py CHECKPOINT BATCH_SIZE GPUS

Protocol (``evaluation.comet.WorkerComet``): the worker answers ``{"ready": true}`` once the model is loaded, then
for each request line ``{"samples": [{"src", "mt", "ref"}, ...]}`` one answer line ``{"scores": [...]}`` (or
``{"error": "..."}``), until its standard input closes. Anything the libraries print goes to standard error, so
that standard output carries the protocol only.
"""

import json
import os
import sys


def main() -> int:
    ckpt, batch_size, gpus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # run as a script, this folder is sys.path[0], and its comet.py (explorer's) would shadow the comet package
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)                      # library output (Lightning, progress) to stderr
    sys.stdout = sys.stderr
    try:
        from comet import load_from_checkpoint
        model = load_from_checkpoint(ckpt)
    except Exception as e:  # noqa: BLE001 - any failure is reported on the protocol channel, then it ends
        protocol.write(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
        protocol.flush()
        return 1
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            samples = json.loads(line)["samples"]
            out = model.predict(samples, batch_size=batch_size, gpus=gpus, progress_bar=False)
            answer = {"scores": [float(x) for x in out.scores]}
        except Exception as e:  # noqa: BLE001 - reported to the caller, who raises CometError
            answer = {"error": f"{type(e).__name__}: {e}"}
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
