"""Expected outputs for tests/litepose_official.rs from the official LitePose grouping code.

    python3 official_group.py CASES_DIR LITEPOSE_CHECKOUT OUT_JSON [--print CASE]

CASES_DIR holds what `write_cases_for_the_official_code` (tests/litepose_official.rs) wrote.
LITEPOSE_CHECKOUT is a checkout of github.com/mit-han-lab/litepose (tested at 00b702d); its
lib/core/group.py runs unmodified. Needs numpy and munkres (pip install munkres; 1.1.4).

group.py needs torch only for tensor plumbing: this script gives it a small numpy stand-in
(`T` below: unsqueeze/view/argmax/sum(dim=...), torch.cat/mean/round) and replaces
HeatmapParser.top_k (MaxPool2d NMS + torch.topk + gather) by a numpy equivalent in which equal
values come in pixel order (torch.topk leaves that order unspecified). match_by_tag, adjust,
refine and the person scores are the official code.
"""
import json
import sys
import types

import numpy as np


class T(np.ndarray):
    """The few torch.Tensor methods group.py uses, on numpy arrays (float32 throughout)."""

    def unsqueeze(self, d):
        return np.expand_dims(np.asarray(self), d).view(T)

    def view(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (type, np.dtype)):
            return np.ndarray.view(self, shape[0])
        return np.asarray(self).reshape(*shape).view(T)

    def cpu(self):
        return self

    def numpy(self):
        return np.asarray(self)

    def argmax(self, dim=None, axis=None, **kw):
        return np.asarray(self).argmax(axis=dim if dim is not None else axis).view(T)

    def sum(self, dim=None, axis=None, **kw):
        r = np.asarray(self).sum(axis=dim if dim is not None else axis, **kw)
        return r.view(T) if isinstance(r, np.ndarray) else r


def install_torch_stand_in():
    torch = types.ModuleType('torch')
    torch.cat = lambda xs, dim=0: np.concatenate([np.asarray(x) for x in xs], axis=dim).view(T)
    torch.mean = lambda x, dim=None: np.asarray(np.mean(np.asarray(x), axis=dim)).view(T)
    torch.round = lambda x: np.round(np.asarray(x)).view(T)
    nn = types.ModuleType('torch.nn')
    nn.MaxPool2d = lambda *a, **k: None
    torch.nn = nn
    sys.modules['torch'] = torch
    sys.modules['torch.nn'] = nn


def numpy_top_k(self, det, tag):
    """HeatmapParser.top_k: NMS (max-pool 5, pad 2, keep equal), top-k per joint, gathered tags."""
    det = np.asarray(det)
    tag = np.asarray(tag)
    k = self.params.max_num_people
    n, J, H, W = det.shape
    padded = np.pad(det, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-np.inf)
    maxm = np.lib.stride_tricks.sliding_window_view(padded, (5, 5), axis=(2, 3)).max(axis=(-1, -2))
    det = det * (maxm == det).astype(np.float32)
    flat = det.reshape(n, J, -1)
    ind = np.argsort(-flat, axis=2, kind='stable')[:, :, :k]
    val_k = np.take_along_axis(flat, ind, 2)
    tagf = tag.reshape(n, J, H * W, -1)
    tag_k = np.stack([np.take_along_axis(tagf[:, :, :, i], ind, 2) for i in range(tagf.shape[3])], axis=3)
    loc_k = np.stack((ind % W, ind // W), axis=3)
    return {'tag_k': tag_k, 'loc_k': loc_k, 'val_k': val_k}


def fnv1a(people):
    h = 0xcbf29ce484222325
    for person in people:
        for row in person:
            for v in row[:3]:
                for b in np.float32(v).tobytes():
                    h ^= b
                    h = (h * 0x100000001b3) & 0xffffffffffffffff
    return '%016x' % h


def main():
    cases_dir, checkout, out = sys.argv[1:4]
    show = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == '--print' else None
    install_torch_stand_in()
    scope = {'__name__': 'group'}
    src = open(checkout + '/lib/core/group.py').read()
    exec(compile(src, 'lib/core/group.py', 'exec'), scope)
    scope['HeatmapParser'].top_k = numpy_top_k
    ns = types.SimpleNamespace
    index = json.load(open(cases_dir + '/index.json'))
    results = []
    for i, c in enumerate(index):
        J, H, W, D = c['joints'], c['h'], c['w'], c['d']
        hm = np.fromfile('%s/case%d.heatmaps.f32' % (cases_dir, i), '<f4').reshape(J, H, W)
        tags = np.fromfile('%s/case%d.tags.f32' % (cases_dir, i), '<f4').reshape(D, J, H, W)
        cfg = ns(DATASET=ns(NUM_JOINTS=J, MAX_NUM_PEOPLE=30, WITH_CENTER=False),
                 TEST=ns(DETECTION_THRESHOLD=0.1, TAG_THRESHOLD=1.0, USE_DETECTION_VAL=True,
                         IGNORE_TOO_MUCH=c['ignore_too_much'], IGNORE_CENTER=True,
                         NMS_KERNEL=5, NMS_PADDING=2),
                 MODEL=ns(TAG_PER_JOINT=True))
        parser = scope['HeatmapParser'](cfg)
        det = np.ascontiguousarray(hm[None]).view(T)
        tag = np.ascontiguousarray(tags.transpose(1, 2, 3, 0)[None]).view(T)  # [1, J, H, W, D]
        ans, scores = parser.parse(det, tag, True, True)
        people = ans[0]
        if show == i:
            for p, s in zip(people, scores):
                print('score', repr(s))
                print(np.asarray(p)[:, :3])
        results.append({'joints': J, 'h': H, 'w': W, 'd': D, 'people': len(people),
                        'scores': [int(np.float32(s).view(np.uint32)) for s in scores],
                        'joints_fnv1a': fnv1a(people)})
    json.dump({'source': 'mit-han-lab/litepose 00b702d lib/core/group.py, munkres 1.1.4, numpy ' + np.__version__,
               'cases': results}, open(out, 'w'), indent=1)
    print(len(results), 'cases,', sum(r['people'] for r in results), 'people')


if __name__ == '__main__':
    main()
