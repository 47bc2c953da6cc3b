"""onnxruntime (native, one thread) on one ONNX model: batch-1 latency and
batch-32 throughput, as one JSON line.

    python3 bench/ort_native.py MODEL.onnx [ITERATIONS]
"""

import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    path = sys.argv[1]
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    width = sess.get_inputs()[0].shape[1]
    rng = np.random.default_rng(1)
    x1 = rng.random((1, width), dtype=np.float32)
    x32 = rng.random((32, width), dtype=np.float32)
    for _ in range(200):
        sess.run(None, {name: x1})
    samples = []
    for _ in range(iterations):
        t = time.perf_counter_ns()
        sess.run(None, {name: x1})
        samples.append((time.perf_counter_ns() - t) / 1e3)
    samples.sort()
    batches = max(iterations // 8, 50)
    t = time.perf_counter_ns()
    for _ in range(batches):
        sess.run(None, {name: x32})
    per_s = batches * 32 / ((time.perf_counter_ns() - t) / 1e9)
    print(
        json.dumps(
            {
                "runtime": "onnxruntime native",
                "version": ort.__version__,
                "model": path,
                "median_us": samples[len(samples) // 2],
                "p99_us": samples[int(len(samples) * 0.99)],
                "batch32_per_s": per_s,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


if __name__ == "__main__":
    main()
