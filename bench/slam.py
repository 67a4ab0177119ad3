"""Feed depth_ros depth into SLAM: RGB-D odometry and a TSDF map on a synthetic walk with exact poses.

    pip install -e '.[slam]'            # Open3D (CPU) and evo; Open3D needs libusb-1.0 (apt: libusb-1.0-0)
    python bench/slam.py                # 60 frames at 640x480, every method, figures in models/eval/
    python bench/slam.py --frames 30 --size 320x240 --methods ground_truth opencv_sgbm
    python bench/slam.py --bag /tmp/walk     # the walk as a recording, for depth-ros-adapt
    python bench/slam.py --methods /tmp/adapted/anynet_spn8_adapted.json /tmp/adapted/mbv2_fbnet_kd_adapted.json

For each depth source (the exact depth, OpenCV SGBM, each shipped stereo network, the mono node's
default network with metric depth from the camera's focal length; or any model card, such as
``depth-ros-adapt``'s output) this runs Open3D's RGB-D
odometry frame to frame over the walk of ``depth_ros.slam_eval`` and prints a markdown table:
depth density and AbsRel, ATE (SE(3)-aligned; Sim(3)-aligned with its scale), RPE per frame
(translation, rotation), failed steps, and time per frame (depth, odometry). Writes
``slam_traj.jpg`` (top view of the trajectories, position error per frame) and ``slam_map.jpg``
(TSDF maps fused from the exact depth and poses, and from ``--map-method``'s depth and odometry).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from depth_ros import slam_eval

def abs_rel(depth: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean |d - d*| / d* over pixels valid in both (all frames)."""
    d, t = np.concatenate([x.ravel() for x in depth]), np.concatenate([x.ravel() for x in truth])
    both = np.isfinite(d) & np.isfinite(t)
    return float(np.mean(np.abs(d[both] - t[both]) / t[both]))


def evaluate(seq: slam_eval.Walk, method: str, jacobian: str) -> dict:
    """Depth, odometry and errors of one method: a dict of the table's numbers plus the run,
    the poses and per-frame position errors (m, unaligned: both start at the true first pose)."""
    run = slam_eval.estimate_depth(seq, method)
    start = time.perf_counter()
    poses, lost = slam_eval.rgbd_odometry(seq, run.depth, jacobian)
    vo_s = (time.perf_counter() - start) / (len(seq.left) - 1)
    se3 = slam_eval.trajectory_errors(poses, seq.poses)
    sim3 = slam_eval.trajectory_errors(poses, seq.poses, correct_scale=True)
    return {'method': method, 'run': run, 'poses': poses, 'lost': lost, 'se3': se3, 'sim3': sim3, 'vo_s': vo_s,
            'absrel': abs_rel(run.depth, seq.depth),
            'drift': np.linalg.norm(poses[:, :3, 3] - seq.poses[:, :3, 3], axis=1)}


def table(results: list[dict], seq: slam_eval.Walk, jacobian: str) -> str:
    """The markdown table of the results."""
    c = seq.camera
    path = np.linalg.norm(np.diff(seq.poses[:, :3, 3], axis=0), axis=1).sum()
    lines = [f'RGB-D odometry ({jacobian} term) on {len(seq.left)} frames at {c.width}x{c.height} '
             f'(fx {c.fx:g} px, baseline {c.baseline:g} m), path {path:.2f} m; ATE = RMSE of position after '
             'SE(3) alignment (Sim(3) and its scale in brackets), RPE = RMSE of the frame-to-frame motion error.', '',
             '| depth | density | AbsRel | ATE m (Sim(3) m, scale) | RPE trans m/frame | RPE rot deg/frame '
             '| failed steps | depth ms/frame | odometry ms/frame |',
             '|---|---:|---:|---|---:|---:|---:|---:|---:|']
    for r in results:
        se3, sim3 = r['se3'], r['sim3']
        name = Path(r['method']).stem if r['method'].endswith('.json') else r['method']
        name += ' (metric, from fx)' if slam_eval.method_kind(r['method']) == 'mono' else ''
        lines.append(f"| {name} | {100 * r['run'].density:.0f}% | {r['absrel']:.3f} | {se3.ate:.3f} "
                     f"({sim3.ate:.3f}, {sim3.scale:.2f}) | {se3.rpe_trans:.4f} | {se3.rpe_rot:.3f} | {r['lost']} | "
                     f"{1000 * r['run'].seconds_per_frame:.0f} | {1000 * r['vo_s']:.0f} |")
    return '\n'.join(lines)


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-from-camera pose (4, 4) of an optical-frame camera at ``eye`` looking at ``target``
    with the world's y axis pointing down in the image."""
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    pose[:3, 3] = eye
    return pose


def splat(points: np.ndarray, colors: np.ndarray, view: np.ndarray, k: np.ndarray, size: tuple[int, int],
          radius: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of coloured points seen from ``view`` (world-from-camera) with
    intrinsics ``k``: nearest point wins, each drawn as a (2 radius + 1)^2 square; grey background."""
    width, height = size
    image = np.full((height, width, 3), 235, np.uint8)
    cam = (points - view[:3, 3]) @ view[:3, :3]
    ahead = cam[:, 2] > 0.1
    cam, rgb = cam[ahead], (255 * np.clip(colors[ahead], 0, 1)).astype(np.uint8)
    u = np.rint(k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2]).astype(int)
    v = np.rint(k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]).astype(int)
    order = np.argsort(-cam[:, 2])   # far to near: later (nearer) writes win
    u, v, rgb = u[order], v[order], rgb[order]
    for du in range(-radius, radius + 1):
        for dv in range(-radius, radius + 1):
            uu, vv = u + du, v + dv
            ok = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            image[vv[ok], uu[ok]] = rgb[ok]
    return image


def draw_path(image: np.ndarray, poses: np.ndarray, view: np.ndarray, k: np.ndarray,
              color: tuple[int, int, int]) -> None:
    """Draw camera positions of ``poses`` as a polyline into ``image`` (RGB, in place)."""
    cam = (poses[:, :3, 3] - view[:3, 3]) @ view[:3, :3]
    uv = np.stack([k[0, 0] * cam[:, 0] / cam[:, 2] + k[0, 2], k[1, 1] * cam[:, 1] / cam[:, 2] + k[1, 2]], 1)
    cv2.polylines(image, [np.rint(uv).astype(np.int32)], False, color, 2, cv2.LINE_AA)


def map_figure(seq: slam_eval.Walk, panels: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path,
               size: tuple[int, int] = (640, 480)) -> None:
    """One oblique view (from 2.5 m above and 1.2 m behind the start) per (title, points, colours, poses) map,
    the estimated path in red and the true one in green, side by side as a JPEG."""
    start = seq.poses[0, :3, 3]
    view = look_at(start + np.array([0.0, -2.5, -1.2]), start + np.array([0.0, 0.8, 3.0]))
    f = 0.7 * size[0]
    k = np.array([[f, 0, (size[0] - 1) / 2], [0, f, (size[1] - 1) / 2], [0, 0, 1]])
    tiles = []
    for title, points, colors, poses in panels:
        keep = points[:, 1] > start[1] - 0.4   # drop the ceiling (y down: above the camera) to see in
        tile = splat(points[keep], colors[keep], view, k, size)
        draw_path(tile, seq.poses, view, k, (0, 160, 0))
        draw_path(tile, poses, view, k, (220, 0, 0))
        cv2.putText(tile, title, (10, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (0, 0, 0), 2, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


def trajectory_figure(seq: slam_eval.Walk, results: list[dict], path: Path) -> None:
    """Top view (x right, z forwards) of the true and estimated camera paths, and each method's
    position error per frame (unaligned: every path starts at the true first pose)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (top, err) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=90, width_ratios=(1, 1.4))
    top.plot(seq.poses[:, 0, 3], seq.poses[:, 2, 3], 'k-', lw=3, alpha=0.35, label='true path')
    for r in results:
        top.plot(r['poses'][:, 0, 3], r['poses'][:, 2, 3], lw=1.3, label=r['method'])
        err.plot(r['drift'], lw=1.3, label=r['method'])
    top.set(xlabel='x (m, right)', ylabel='z (m, forwards)', title='camera path, top view')
    top.set_aspect('equal', adjustable='datalim')
    err.set(xlabel='frame', ylabel='position error (m)', title='distance from the true position', yscale='log')
    top.legend(fontsize=8)
    err.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, pil_kwargs={'quality': 80})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--frames', type=int, default=60, help='frames of the walk (default 60)')
    parser.add_argument('--size', default='640x480', help='image WxH (default 640x480, the nodes\' camera)')
    parser.add_argument('--seed', type=int, default=slam_eval.SEED, help='random_scene seed of the room')
    parser.add_argument('--methods', nargs='+', default=list(slam_eval.METHODS),
                        help='depth sources: names or model cards (e.g. depth-ros-adapt\'s output)')
    parser.add_argument('--start', type=int, default=0, help='evaluate from this frame on (e.g. the held-out end)')
    parser.add_argument('--bag', type=Path, help='write the walk as a recording here (for depth-ros-adapt) and stop')
    parser.add_argument('--jacobian', choices=('color', 'hybrid'), default='color', help='odometry residual')
    parser.add_argument('--map-method', default='anynet_spn8', help='depth + odometry shown next to the true map')
    parser.add_argument('--figures', type=Path, default=Path('models/eval'), help='folder for the JPEGs')
    parser.add_argument('--out', type=Path, help='also write the table to this markdown file')
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split('x'))

    start = time.perf_counter()
    seq = slam_eval.render_walk(args.frames, (width, height), args.seed)
    print(f'rendered {args.frames} frames in {time.perf_counter() - start:.1f} s', flush=True)
    if args.bag:
        print(f'{args.bag}: {slam_eval.write_bag(seq, args.bag)}')
        return
    seq = slam_eval.Walk(seq.left[args.start:], seq.right[args.start:], seq.depth[args.start:],
                         seq.poses[args.start:], seq.camera)
    results = []
    for method in args.methods:
        results.append(evaluate(seq, method, args.jacobian))
        print(f"{method}: ATE {results[-1]['se3'].ate:.3f} m", flush=True)
    text = table(results, seq, args.jacobian)
    print(text)
    if args.out:
        args.out.write_text(text + '\n')
    args.figures.mkdir(parents=True, exist_ok=True)
    trajectory_figure(seq, results, args.figures / 'slam_traj.jpg')
    panels = [('exact depth and poses', *slam_eval.fuse_tsdf(seq, seq.depth, seq.poses), seq.poses)]
    chosen = [r for r in results if r['method'] == args.map_method]
    if chosen:
        r = chosen[0]
        panels.append((f"{r['method']} depth + odometry", *slam_eval.fuse_tsdf(seq, r['run'].depth, r['poses']),
                       r['poses']))
    map_figure(seq, panels, args.figures / 'slam_map.jpg')
    print(f"figures: {args.figures / 'slam_traj.jpg'}, {args.figures / 'slam_map.jpg'} "
          f'({time.perf_counter() - start:.0f} s in all)')


if __name__ == '__main__':
    main()
