"""onnxruntime (native, one thread) on one ONNX model: batch-1 latency,
batch-32 throughput, peak memory and the batch-1 scores, as one JSON line.

    python3 bench/ort_native.py MODEL.onnx [ITERATIONS [WARMUP]]

The input is the benchmark's fixed row, `((i * 37) mod 255) / 255`, repeated
for each row of a batch (what `kiln bench` and the other peers use).
"""

import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def timed(sess, name, x, n):
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        sess.run(None, {name: x})
        samples.append((time.perf_counter_ns() - t) / 1e3)
    samples.sort()
    return samples


def main():
    path = sys.argv[1]
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d for d in inp.shape[1:]]
    row = np.array([((i * 37) % 255) / 255 for i in range(int(np.prod(shape)))], dtype=np.float32)
    x1 = row.reshape([1, *shape])
    x32 = np.tile(row, 32).reshape([32, *shape])
    for i in range(warmup):
        sess.run(None, {inp.name: x1})
        if i % 8 == 0:
            sess.run(None, {inp.name: x32})
    one = timed(sess, inp.name, x1, iterations)
    many = timed(sess, inp.name, x32, max(iterations // 8, 10))
    scores = sess.run(None, {inp.name: x1})[0][0]
    print(
        json.dumps(
            {
                "runtime": "onnxruntime native",
                "version": ort.__version__,
                "median_us": one[len(one) // 2],
                "p99_us": one[int(len(one) * 0.99)],
                "batch32_per_s": 32e6 / many[len(many) // 2],
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "scores": [float(s) for s in scores],
            }
        )
    )


if __name__ == "__main__":
    main()
