"""Model cards: lookup of shipped models and their description (no torch)."""
import json

from depth_ros import model_card as mc
from toy_models import write_mono_toy, write_stereo_toy


def test_shipped_cards_first_of_each_name_trained_only(tmp_path, monkeypatch):
    first, second = tmp_path / 'a', tmp_path / 'b'
    write_mono_toy(first, 'mono_a', trained=True)
    write_mono_toy(second, 'mono_a', trained=True)   # same name later in the path: shadowed
    write_stereo_toy(second, 'stereo_b')             # untrained: tests only
    (first / 'broken.json').write_text('{')          # not a card: skipped
    monkeypatch.setenv('DEPTH_ROS_MODELS', f'{first}:{second}')
    found = {c.name: c.directory for c in mc.shipped_cards('mono')}  # (the repo's models/ come later)
    assert found['mono_a'] == first
    assert 'stereo_b' not in [c.name for c in mc.shipped_cards('stereo')]
    assert 'stereo_b' in [c.name for c in mc.shipped_cards(trained=False)]


def test_describe_cards_lists_training_and_held_out_metrics(tmp_path):
    path = write_mono_toy(tmp_path, 'mono_a', trained=True)
    data = json.loads(path.read_text())
    data['training'] = {'steps': 12, 'device': 'cpu (1 threads)'}
    data['metrics'] = {'eval/all': {'metrics': {'absrel': 0.25, 'delta1': 0.5}}}
    path.write_text(json.dumps(data))
    table = mc.describe_cards([mc.load_card(path)])
    assert '| mono_a | mono |' in table and '12 steps on cpu (1 threads)' in table
    assert 'eval/all: absrel 0.250, delta1 0.500' in table
