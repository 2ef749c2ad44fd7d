"""Face data and verification speed (a benchmark that prints figures).

    python bench/bench_faces.py                       # 112x112 and 32x32, batch 128; 6000 pairs
    python bench/bench_faces.py --images 512 --pairs 300 --json   # a quick run

Reader: images/s of a shuffled, mirrored pass (median of ``--rounds``, readers alternating) over the same synthetic faces stored both
ways — InsightFace's identity-indexed layout and the flat one, each read by the package's
reader (:class:`fbnet_symbol.data.reader.RecordReader`, every image decoded: no memory cache),
and the flat one by MXNet's ``ImageRecordIter`` with as many decode threads — at 112x112
and 32x32. Verification: seconds to decode, embed
(images and flips) and score ``--pairs`` pairs with a random-weight network of
``--arch`` at 3x112x112 (the time does not depend on the weights).
"""
import argparse
import json
import os
import pickle
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reader_speed(faces, flat, shape, batch_size, threads, rounds):
    """Images/s of one shuffled, mirrored pass, decoding every image (no memory cache):
    the median of ``rounds`` passes of each reader, the readers taking turns."""
    import numpy as np
    from fbnet_symbol.data.check import image_record_iter
    from fbnet_symbol.data.reader import RecordReader

    makers = {
        "identity_indexed": lambda: RecordReader(faces, shape, batch_size, seed=1,
                                                 rand_mirror=True, threads=threads,
                                                 cache_bytes=0),
        "flat": lambda: RecordReader(flat, shape, batch_size, seed=1, rand_mirror=True,
                                     threads=threads, cache_bytes=0),
        "flat_image_record_iter": lambda: image_record_iter(
            flat.rec, shape, batch_size, shuffle=True, seed=1, rand_mirror=True,
            threads=threads)}
    speeds = {name: [] for name in makers}
    for _ in range(rounds):
        for name, make in makers.items():
            it = make()
            start, n = time.time(), 0
            for batch in it:
                batch.data[0].wait_to_read()
                n += batch.data[0].shape[0] - batch.pad
            speeds[name].append(n / (time.time() - start))
            del it
    return {name: float(np.median(v)) for name, v in speeds.items()}


def verification_time(folder, images, num_pairs, arch_name, width, batch_size):
    import mxnet as mx
    import numpy as np
    from fbnet_symbol.space.architecture import load_architecture
    from fbnet_symbol.space.child import ChildNet
    from fbnet_symbol.faces.verify import Embedder, verify_model

    rng = np.random.RandomState(0)
    import cv2
    encoded = [cv2.imencode(".jpg", img)[1].tobytes() for img in images]
    bins = [encoded[i] for i in rng.randint(len(encoded), size=2 * num_pairs)]
    path = os.path.join(folder, "pairs.bin")
    with open(path, "wb") as f:
        pickle.dump((bins, [i % 2 == 0 for i in range(num_pairs)]), f)
    arch = load_architecture(arch_name).overridden("seed", width, "arcface", None, None, None)
    net = ChildNet(arch, 10, (3, 112, 112))
    mod = mx.mod.Module(net.symbol, data_names=net.input_names, label_names=["softmax_label"])
    mod.bind(net.input_descs(2), net.label_descs(2))
    mod.init_params(mx.init.Xavier())
    net.export_deploy(*mod.get_params(), os.path.join(folder, "ship", "model"), 1)
    embed = Embedder(os.path.join(folder, "ship"), batch_size=batch_size)
    start = time.time()
    result = verify_model(embed, [path], embed.image_shape, batch_size, progress=False)
    return {"pairs": num_pairs, "seconds": time.time() - start, "arch": arch_name,
            "width_mult": width, "acc_of_random_weights": result["pairs"]["acc"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2560, help="synthetic faces per layout")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None,
                   help="decode threads of both readers (default: the reader's own, the "
                        "cores up to 8)")
    p.add_argument("--rounds", type=int, default=3, help="passes of each reader, taking "
                   "turns; the median is reported (default 3)")
    p.add_argument("--pairs", type=int, default=6000)
    p.add_argument("--arch", default="fbnet_b")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from fbnet_symbol.data.files import write_images
    from fbnet_symbol.faces.files import synthetic_faces, write_face_records
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.reader import default_decode_threads
    from fbnet_symbol.threads import omp_threads

    per = 20
    faces = synthetic_faces(max(2, args.images // per), per, size=112, seed=0)
    args.threads = args.threads or default_decode_threads()
    result = {"images": sum(map(len, faces)), "batch_size": args.batch_size,
              "decode_threads": args.threads, "omp_threads": omp_threads(),
              "cores": os.cpu_count(), "reader_images_per_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        write_face_records(os.path.join(tmp, "train"), faces)
        write_images(os.path.join(tmp, "flat"), [i for f in faces for i in f],
                     [c for c, f in enumerate(faces) for _ in f], fmt=".jpg")
        records = check_data(os.path.join(tmp, "train.rec"))
        flat = check_data(os.path.join(tmp, "flat.rec"))
        for size in (112, 32):
            result["reader_images_per_s"]["%dx%d" % (size, size)] = reader_speed(
                records, flat, (3, size, size), args.batch_size, args.threads, args.rounds)
        if args.pairs:
            result["verification"] = verification_time(
                tmp, [i for f in faces for i in f], args.pairs, args.arch, args.width_mult, 64)
    if args.json:
        print(json.dumps(result))
        return 0
    print("%d synthetic 112x112 faces, batch %d, %d cores:" % (
        result["images"], args.batch_size, result["cores"]))
    for size, r in result["reader_images_per_s"].items():
        print("  at %s, %d decode threads: the package's reader %.0f images/s (identity-"
              "indexed), %.0f (flat); ImageRecordIter %.0f (flat)"
              % (size, args.threads, r["identity_indexed"], r["flat"],
                 r["flat_image_record_iter"]))
    if args.pairs:
        v = result["verification"]
        print("  verification of %d pairs (%s width %g at 112x112, %d MXNet threads): %.1f s"
              % (v["pairs"], v["arch"], v["width_mult"], result["omp_threads"], v["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
