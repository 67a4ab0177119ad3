"""depth_ros: ament_python package (colcon) and pip-installable package (pip install -e .)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'depth_ros'
# Open3D (RGB-D odometry, TSDF) and evo (ATE/RPE) for depth_ros.slam_eval and bench/slam.py; the
# CPU-only Open3D build where PyPI has one. Open3D needs libusb-1.0 (Debian: libusb-1.0-0).
SLAM = ['open3d-cpu>=0.19; sys_platform == "linux" and platform_machine == "x86_64"',
        'open3d>=0.19; sys_platform != "linux" or platform_machine != "x86_64"', 'evo']

setup(
    name=PACKAGE,
    version='0.1.0',
    # `training/` installs as depth_ros.training, so nothing generic lands in site-packages.
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*'])
    + [f'{PACKAGE}.training'] + [f'{PACKAGE}.training.{p}' for p in find_packages('training')],
    package_dir={f'{PACKAGE}.training': 'training'},
    package_data={f'{PACKAGE}.training': ['recipes/*.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.rviz')),
        (f'share/{PACKAGE}/models', [f for ext in ('onnx', 'npz', 'json', 'md') for f in glob(f'models/*.{ext}')]),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools', 'numpy', 'opencv-python-headless', 'onnxruntime', 'pyyaml'],
    extras_require={
        # the ROS 2 Python runtime from PyPI, for machines without a ROS 2 distribution
        'ros': ['ros-rclpy[fastrtps]', 'ros-sensor-msgs', 'ros-stereo-msgs', 'ros-std-msgs',
                'ros-geometry-msgs', 'ros-diagnostic-msgs', 'ros-ament-index-python', 'ros-rcl-interfaces'],
        'train': ['torch>=2.4', 'onnx', 'onnxscript', 'scipy', 'h5py'],
        'bag': ['rosbags>=0.10'],  # depth-ros-bag, depth-ros-record (MCAP and sqlite3 bags, pure Python)
        'slam': SLAM,
        'test': ['pytest', 'ruff', 'rosbags>=0.10'] + SLAM,   # test/test_bag.py, test/test_slam.py
        'bench': ['transformers'],   # Depth Anything V2 Small's architecture in bench/models.py
    },
    zip_safe=True,
    maintainer='depth_ros maintainers',
    maintainer_email='depth_ros@example.com',
    description='Monocular and stereo depth networks (ONNX Runtime) and OpenCV stereo as ROS 2 nodes.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'stereo_depth_node = depth_ros.nodes.entry:stereo',
            'mono_depth_node = depth_ros.nodes.entry:mono',
            'camera_source = depth_ros.nodes.entry:camera_source',
            'depth-ros-demo = depth_ros.demo:main',
            'depth-ros-export = depth_ros.training.cli.export:main',
            'depth-ros-train = depth_ros.training.cli.train:main',
            'depth-ros-evaluate = depth_ros.training.cli.evaluate:main',
            'depth-ros-compare = depth_ros.training.cli.compare:main',
            'depth-ros-render = depth_ros.training.cli.render:main',
            'depth-ros-adapt = depth_ros.training.cli.adapt:main',
            'depth-ros-bag = depth_ros.recordings.cli:main',
            'depth-ros-record = depth_ros.recordings.cli:record',
            'depth-ros-realcheck = depth_ros.training.realcheck:main',
        ],
    },
)
