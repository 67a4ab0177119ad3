"""Dataset readers on small fixtures written here in each dataset's on-disk format."""
import struct

import cv2
import numpy as np
import pytest
import torch

from depth_ros.training.data import (DIODE, DIW, KITTIDepth, KITTIStereo2015, Middlebury, NYUv2Folder, NYUv2Mat,
                                     SceneFlow, TorchDataset, collate, open_reader)
from depth_ros.training.data.augment import Augment
from depth_ros.training.data.io import read_calib, read_pfm

H, W = 6, 8


def _rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_rgb(path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))   # OpenCV files are BGR


def _write_u16(path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), values.astype(np.uint16))


def _pfm_bytes(kind: bytes, rows_top_first: np.ndarray, scale: float) -> bytes:
    """A PFM file written by hand: header, then rows bottom-up in the endianness of the scale's sign."""
    h, w = rows_top_first.shape[:2]
    fmt = '<' if scale < 0 else '>'
    flat = rows_top_first[::-1].reshape(-1)
    return kind + b'\n%d %d\n' % (w, h) + repr(scale).encode() + b'\n' + struct.pack(f'{fmt}{flat.size}f', *flat)


def test_pfm_reader_handles_both_endians_and_bottom_up_rows(tmp_path):
    image = np.arange(H * W, dtype=np.float32).reshape(H, W) / 7.0
    for scale in (-1.0, 2.0):
        (tmp_path / 'a.pfm').write_bytes(_pfm_bytes(b'Pf', image, scale))
        np.testing.assert_array_equal(read_pfm(tmp_path / 'a.pfm'), image)
    colour = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    (tmp_path / 'c.pfm').write_bytes(_pfm_bytes(b'PF', colour, -1.0))
    np.testing.assert_array_equal(read_pfm(tmp_path / 'c.pfm'), colour)


def test_nyu_labeled_mat(tmp_path):
    h5py = pytest.importorskip('h5py')
    images = [_rgb(i) for i in range(3)]
    depths = [np.random.default_rng(10 + i).uniform(0.5, 9.0, (H, W)).astype(np.float32) for i in range(3)]
    depths[1][2, 3] = 0.0
    path = tmp_path / 'nyu_depth_v2_labeled.mat'
    with h5py.File(path, 'w', userblock_size=512) as f:     # MATLAB v7.3 layout: dimensions reversed
        f['images'] = np.stack([im.transpose(2, 1, 0) for im in images])    # (N, 3, W, H)
        f['depths'] = np.stack([d.T for d in depths])                        # (N, W, H)
    with open(path, 'r+b') as f:
        f.write(b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .')
    reader = NYUv2Mat(path, indices=[2, 1])
    assert len(reader) == 2
    sample = reader[1]
    np.testing.assert_array_equal(sample['image'], images[1])
    assert sample['image'].shape == (H, W, 3) and sample['depth'].shape == (H, W)
    assert np.isnan(sample['depth'][2, 3])
    np.testing.assert_array_equal(np.nan_to_num(sample['depth']), np.where(depths[1] > 0, depths[1], 0))
    assert sample['fx'] == pytest.approx(518.8579)


def test_nyu_folder(tmp_path):
    rgb, mm = _rgb(0), np.random.default_rng(1).integers(500, 9000, (H, W))
    mm[0, :2] = 0
    _write_rgb(tmp_path / 'scene' / '00012_colors.png', rgb)
    _write_u16(tmp_path / 'scene' / '00012_depth.png', mm)
    sample = NYUv2Folder(tmp_path)[0]
    np.testing.assert_array_equal(sample['image'], rgb)
    assert np.isnan(sample['depth'][0, :2]).all()
    np.testing.assert_allclose(sample['depth'][1:], mm[1:] / 1000.0, rtol=1e-6)
    assert sample['depth'].dtype == np.float32 and sample['fx'] == pytest.approx(518.8579 * W / 640)


def test_diode(tmp_path):
    scan = tmp_path / 'val' / 'indoors' / 'scene_00019' / 'scan_00183'
    scan.mkdir(parents=True)
    rgb, depth = _rgb(3), np.random.default_rng(4).uniform(1, 30, (H, W, 1)).astype(np.float32)
    mask = np.ones((H, W), np.float32)
    mask[3, 4] = 0
    name = '00019_00183_indoors_000_010'
    _write_rgb(scan / f'{name}.png', rgb)
    np.save(scan / f'{name}_depth.npy', depth)
    np.save(scan / f'{name}_depth_mask.npy', mask)
    sample = DIODE(tmp_path / 'val')[0]
    np.testing.assert_array_equal(sample['image'], rgb)
    assert np.isnan(sample['depth'][3, 4]) and np.isfinite(sample['depth']).sum() == H * W - 1
    np.testing.assert_array_equal(sample['depth'][0], depth[0, :, 0])
    assert sample['fx'] == pytest.approx(886.81 * W / 1024)


KITTI_CALIB = ('calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n'
               'P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 '
               '1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03\n'
               'P_rect_03: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 '
               '1.728540e+02 2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03\n')

def test_kitti_stereo_2015(tmp_path):
    root = tmp_path / 'training'
    left, right = _rgb(5), _rgb(6)
    raw = np.zeros((H, W), np.uint16)
    raw[2, 3], raw[4, 1] = 3200, 65535
    _write_rgb(root / 'image_2' / '000000_10.png', left)
    _write_rgb(root / 'image_3' / '000000_10.png', right)
    _write_rgb(root / 'image_2' / '000000_11.png', left)             # the second frame is not a sample
    _write_u16(root / 'disp_occ_0' / '000000_10.png', raw)
    (root / 'calib_cam_to_cam').mkdir()
    (root / 'calib_cam_to_cam' / '000000.txt').write_text(KITTI_CALIB)
    _write_rgb(root / 'image_2' / '000001_10.png', left)             # like the test split: no ground truth
    _write_rgb(root / 'image_3' / '000001_10.png', right)
    reader = KITTIStereo2015(root)
    assert len(reader) == 2 and reader.kind == 'stereo'
    sample = reader[0]
    np.testing.assert_array_equal(sample['left'], left)
    np.testing.assert_array_equal(sample['right'], right)
    assert sample['disparity'][2, 3] == 12.5 and sample['disparity'][4, 1] == pytest.approx(65535 / 256)
    assert np.isnan(sample['disparity']).sum() == H * W - 2
    assert sample['fx'] == pytest.approx(721.5377)
    assert sample['baseline'] == pytest.approx((44.85728 + 339.5242) / 721.5377)
    assert 'disparity' not in reader[1] and 'fx' not in reader[1]
    assert read_calib(root / 'calib_cam_to_cam' / '000000.txt')['calib_time'] == '09-Jan-2012 13:57:47'


def test_kitti_depth(tmp_path):
    drive = '2011_09_26_drive_0001_sync'
    raw = np.zeros((H, W), np.uint16)
    raw[1, 2] = 256 * 17 + 64
    _write_u16(tmp_path / 'gt' / 'train' / drive / 'proj_depth' / 'groundtruth' / 'image_02' / '0000000005.png', raw)
    rgb = _rgb(7)
    _write_rgb(tmp_path / 'raw' / '2011_09_26' / drive / 'image_02' / 'data' / '0000000005.png', rgb)
    (tmp_path / 'raw' / '2011_09_26' / 'calib_cam_to_cam.txt').write_text(KITTI_CALIB)
    sample = KITTIDepth(tmp_path / 'gt', raw_root=tmp_path / 'raw')[0]
    np.testing.assert_array_equal(sample['image'], rgb)
    assert sample['depth'][1, 2] == 17.25 and np.isnan(sample['depth']).sum() == H * W - 1
    assert sample['fx'] == pytest.approx(721.5377)


def test_sceneflow(tmp_path):
    rng = np.random.default_rng(8)
    for split in ('TRAIN', 'TEST'):
        for view in ('left', 'right'):
            _write_rgb(tmp_path / 'frames_cleanpass' / split / 'A' / '0000' / view / '0006.png', _rgb(9))
            folder = tmp_path / 'disparity' / split / 'A' / '0000' / view
            folder.mkdir(parents=True)
            (folder / '0006.pfm').write_bytes(_pfm_bytes(b'Pf', rng.uniform(0, 90, (H, W)).astype(np.float32), 1.0))
    driving = tmp_path / 'frames_cleanpass' / '15mm_focallength' / 'scene_forwards' / 'fast'
    _write_rgb(driving / 'left' / '0001.png', _rgb(10))
    _write_rgb(driving / 'right' / '0001.png', _rgb(11))
    driving_disparity = tmp_path / 'disparity' / '15mm_focallength' / 'scene_forwards' / 'fast' / 'left'
    driving_disparity.mkdir(parents=True)
    (driving_disparity / '0001.pfm').write_bytes(_pfm_bytes(b'Pf', np.full((H, W), 3.0, np.float32), -1.0))
    assert len(SceneFlow(tmp_path)) == 3 and len(SceneFlow(tmp_path, split='train')) == 1
    sample = SceneFlow(tmp_path, split='test')[0]
    stored = tmp_path / 'disparity' / 'TEST' / 'A' / '0000'
    np.testing.assert_array_equal(sample['disparity'], read_pfm(stored / 'left' / '0006.pfm'))
    np.testing.assert_array_equal(sample['disparity_right'], read_pfm(stored / 'right' / '0006.pfm'))
    np.testing.assert_array_equal(sample['right'], _rgb(9))
    assert sample['fx'] == 1050.0
    drive = SceneFlow(tmp_path)[0]
    assert drive['fx'] == 450.0 and 'disparity_right' not in drive and (drive['disparity'] == 3.0).all()
    with pytest.raises(FileNotFoundError):
        SceneFlow(tmp_path, render_pass='final')


MIDDLEBURY_CALIB = """cam0=[3997.684 0 1176.728; 0 3997.684 1011.728; 0 0 1]
cam1=[3997.684 0 1307.839; 0 3997.684 1011.728; 0 0 1]
doffs=131.111
baseline=193.001
width=2964
height=1988
ndisp=280
isint=0
vmin=31
vmax=257
"""


def test_middlebury(tmp_path):
    scene = tmp_path / 'trainingQ' / 'Adirondack'
    left, right = _rgb(12), _rgb(13)
    _write_rgb(scene / 'im0.png', left)
    _write_rgb(scene / 'im1.png', right)
    disparity = np.random.default_rng(14).uniform(10, 60, (H, W)).astype(np.float32)
    disparity[0, 0] = np.inf
    (scene / 'disp0GT.pfm').write_bytes(_pfm_bytes(b'Pf', disparity, -1.0))
    (scene / 'disp1.pfm').write_bytes(_pfm_bytes(b'Pf', disparity + 1, -1.0))
    mask = np.full((H, W), 255, np.uint8)
    mask[:, 0] = 128
    cv2.imwrite(str(scene / 'mask0nocc.png'), mask)
    (scene / 'calib.txt').write_text(MIDDLEBURY_CALIB)
    sample = Middlebury(tmp_path)[0]
    np.testing.assert_array_equal(sample['left'], left)
    assert np.isnan(sample['disparity'][0, 0]) and np.isnan(sample['disparity_right'][0, 0])
    np.testing.assert_array_equal(sample['disparity'][1:], disparity[1:])
    assert sample['occlusion'][:, 0].all() and not sample['occlusion'][:, 1:].any()
    assert sample['fx'] == 3997.684 and sample['baseline'] == pytest.approx(0.193001)
    assert sample['doffs'] == 131.111 and sample['ndisp'] == 280
    # a sample with the right-view disparity can be flipped: new left = mirrored right view
    flipped = Augment(hflip=1.0, channel_permutation=0.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(flipped['left'], right[:, ::-1])
    np.testing.assert_array_equal(flipped['disparity'][:, ::-1][1:], disparity[1:] + 1)


def test_diw(tmp_path):
    _write_rgb(tmp_path / 'imgs' / 'a.png', _rgb(15, 40, 60))
    _write_rgb(tmp_path / 'imgs' / 'b.png', _rgb(16, 30, 30))
    (tmp_path / 'DIW_train.csv').write_text(
        './imgs/a.png\n'
        '1,1,40,60,<,60,40\n'                  # same size: 1-based -> 0-based
        './imgs/b.png\n'
        '11,21,60,60,>,60,60\n'               # annotated at 60x60, image is 30x30
        '2,2,3,3,=,60,60\n')
    reader = DIW(tmp_path / 'DIW_train.csv')
    assert len(reader) == 2 and reader.kind == 'relative'
    first, second = reader[0], reader[1]
    np.testing.assert_array_equal(first['pairs'], [[0, 0, 39, 59]])
    np.testing.assert_array_equal(first['ordinal'], [1])                 # '<': A nearer -> +1
    np.testing.assert_array_equal(second['pairs'], [[5, 10, 29, 29], [0, 0, 1, 1]])
    np.testing.assert_array_equal(second['ordinal'], [-1, 0])
    assert second['image'].shape == (30, 30, 3)
    cropped = Augment(crop=(20, 20), hflip=0.0, channel_permutation=0.0)(second, np.random.default_rng(3))
    assert all((cropped['pairs'] >= 0).all(1) & (cropped['pairs'] < 20).all(1))


def test_torch_dataset_and_registry(tmp_path):
    for i in range(3):
        _write_rgb(tmp_path / f'{i:05d}_colors.png', _rgb(20 + i, 12, 16))
        _write_u16(tmp_path / f'{i:05d}_depth.png', np.full((12, 16), 1000 + i))
    reader = open_reader('nyu', str(tmp_path))
    dataset = TorchDataset(reader, Augment(crop=(8, 8)))
    batch = collate([dataset[i] for i in range(3)])
    assert batch['image'].shape == (3, 3, 8, 8) and batch['image'].dtype == torch.float32
    assert batch['depth'].shape == (3, 1, 8, 8)
    torch.testing.assert_close(batch['depth'][:, 0, 0, 0], torch.tensor([1.0, 1.001, 1.002]))
    assert isinstance(batch['path'], list) and batch['fx'].shape == (3,)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate)
    assert next(iter(loader))['image'].shape == (3, 3, 8, 8)
    with pytest.raises(ValueError, match='known: diode, diw'):
        open_reader('imagenet', str(tmp_path))
