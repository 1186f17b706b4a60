"""Pillow's side of the preprocessing comparison: what the original spends per photo before the model.

Usage: pillow_costs.py HEIGHT WIDTH PHOTO...   (prints JSON: {"ms": ..., "cpu_ms": ...})
Per photo, from its bytes in memory: Image.open -> convert('RGB') -> resize((WIDTH, HEIGHT), BILINEAR), as
torchvision's Resize runs it. As bench/ceiling.ts measures our stages: best wall time of the runs after a warm-up,
CPU time their mean; both averaged over the photos.
"""
import io
import json
import sys
import time

from PIL import Image

RUNS = 3
WARMUP = 1


def chain(data, size):
    Image.open(io.BytesIO(data)).convert('RGB').resize(size, Image.BILINEAR)


def main():
    height, width = int(sys.argv[1]), int(sys.argv[2])
    walls, cpus = [], []
    for path in sys.argv[3:]:
        with open(path, 'rb') as f:
            data = f.read()
        for _ in range(WARMUP):
            chain(data, (width, height))
        best = float('inf')
        cpu_start = time.process_time()
        for _ in range(RUNS):
            start = time.perf_counter()
            chain(data, (width, height))
            best = min(best, time.perf_counter() - start)
        cpus.append((time.process_time() - cpu_start) / RUNS)
        walls.append(best)
    print(json.dumps({'ms': 1000 * sum(walls) / len(walls), 'cpu_ms': 1000 * sum(cpus) / len(cpus)}))


if __name__ == '__main__':
    main()
