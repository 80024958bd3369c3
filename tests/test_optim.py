"""Tests of minidl.optim: update rules, masks, dtypes, checkpointing, errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from minidl import optim, schedules
from minidl.parameter import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]


def make_params(dtype=np.float64, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype), name=f"p{i}")
            for i, s in enumerate(shapes)]


def grad_sequence(n_steps, dtype=np.float64, seed=1, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n_steps)]


def run(opt, params, grads, scheduler=None):
    for step_grads in grads:
        opt.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad += g
        opt.step()
        if scheduler is not None:
            scheduler.step()


# ---------------------------------------------------------------------------
# independent float64 references
# ---------------------------------------------------------------------------

def ref_sgd(x0, grads, lr, momentum=0.0, nesterov=False, wd=0.0):
    x = [a.astype(np.float64).copy() for a in x0]
    bufs = [None] * len(x)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            d = g + wd * x[i]
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            x[i] = x[i] - lr * d
    return x


def ref_adam(x0, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    x = [a.astype(np.float64).copy() for a in x0]
    m = [np.zeros_like(a) for a in x]
    v = [np.zeros_like(a) for a in x]
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            if decoupled:
                x[i] = x[i] * (1 - lr * wd)
            else:
                g = g + wd * x[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g ** 2
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            x[i] = x[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return x


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "nesterov": dict(lr=0.05, momentum=0.8, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.01),
    "all": dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=0.05),
}


@pytest.mark.parametrize("case", sorted(SGD_CASES))
def test_sgd_matches_reference(case):
    kw = SGD_CASES[case]
    params = make_params()
    x0 = [p.data.copy() for p in params]
    grads = grad_sequence(7)
    run(optim.SGD(params, **kw), params, grads)
    expected = ref_sgd(x0, grads, kw["lr"], kw.get("momentum", 0.0), kw.get("nesterov", False),
                       kw.get("weight_decay", 0.0))
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-12)


def test_sgd_first_steps_by_hand():
    # one scalar, lr=0.5, momentum=0.5, nesterov: g=[1, 1], x0=0
    p = Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.5, momentum=0.5, nesterov=True)
    p.grad[:] = 1.0
    opt.step()             # buf = 1, d = 1 + 0.5*1 = 1.5, x = -0.75
    assert p.data[0] == -0.75
    opt.step()             # buf = 0.5 + 1 = 1.5, d = 1 + 0.75 = 1.75, x = -0.75 - 0.875
    assert p.data[0] == -1.625


ADAM_CASES = {
    "adam": (optim.Adam, dict(lr=0.01), False),
    "adam_betas_wd": (optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                      False),
    "adamw": (optim.AdamW, dict(lr=0.01, weight_decay=0.1), True),
}


@pytest.mark.parametrize("case", sorted(ADAM_CASES))
def test_adam_matches_reference(case):
    cls, kw, decoupled = ADAM_CASES[case]
    params = make_params()
    x0 = [p.data.copy() for p in params]
    grads = grad_sequence(8)
    run(cls(params, **kw), params, grads)
    b1, b2 = kw.get("betas", (0.9, 0.999))
    wd = kw.get("weight_decay", 0.01 if cls is optim.AdamW else 0.0)
    expected = ref_adam(x0, grads, kw["lr"], b1, b2, kw.get("eps", 1e-8), wd, decoupled)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-12)


def test_adam_first_step_is_lr_times_sign():
    p = Parameter(np.zeros(3))
    opt = optim.Adam([p], lr=0.1, eps=0.0)
    p.grad[:] = [2.0, -0.5, 3.0]
    opt.step()
    np.testing.assert_allclose(p.data, [-0.1, 0.1, -0.1], rtol=1e-12)


def test_adamw_default_weight_decay():
    assert optim.AdamW(make_params()).weight_decay == 0.01
    assert optim.Adam(make_params()).weight_decay == 0.0


# ---------------------------------------------------------------------------
# convergence on a quadratic
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make_opt, steps", [
    (lambda ps: optim.SGD(ps, lr=0.1), 300),
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9), 300),
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), 300),
    (lambda ps: optim.Adam(ps, lr=0.05), 1000),
    (lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.0), 1000),
])
def test_converges_on_quadratic(make_opt, steps):
    # f(x) = 0.5 * sum(a * (x - c)**2), minimum at c
    a = np.array([1.0, 3.0, 0.5, 2.0])
    c = np.array([1.0, -2.0, 0.5, 3.0])
    p = Parameter(np.zeros(4))
    opt = make_opt([p])
    for _ in range(steps):
        opt.zero_grad()
        p.grad += a * (p.data - c)
        opt.step()
    np.testing.assert_allclose(p.data, c, atol=1e-3)


# ---------------------------------------------------------------------------
# masks, in-place updates, dtypes
# ---------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum_wd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    "sgd_nesterov_wd": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                            weight_decay=0.1),
    "adam_wd": lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_masked_entries_stay_exactly_zero(name):
    rng = np.random.default_rng(0)
    mask = rng.random((6, 4, 3, 3)) < 0.5
    p = Parameter(rng.standard_normal((6, 4, 3, 3)), mask=mask)
    opt = OPTIMIZERS[name]([p])
    for _ in range(10):
        opt.zero_grad()
        p.grad += rng.standard_normal(p.shape)   # non-zero gradient everywhere, mask included
        opt.step()
        assert np.all(p.data[~mask] == 0) and not np.any(np.signbit(p.data[~mask]))
    assert np.all(p.data[mask] != 0)
    for key, buf in opt.state_dict()["arrays"].items():
        assert np.all(buf[~mask] == 0), key


def test_masked_parameter_matches_reference_on_connected_entries():
    rng = np.random.default_rng(0)
    mask = rng.random((4, 5)) < 0.6
    p = Parameter(rng.standard_normal((4, 5)), mask=mask)
    x0 = p.data.copy()
    grads = [[rng.standard_normal((4, 5))] for _ in range(5)]
    run(optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), [p], grads)
    expected = ref_sgd([x0], [[g * mask] for (g,) in grads], 0.1, 0.9, False, 0.1)[0]
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_updates_in_place_and_grad_untouched(name):
    params = make_params()
    arrays = [p.data for p in params]
    opt = OPTIMIZERS[name](params)
    grads = grad_sequence(1)[0]
    for p, g in zip(params, grads):
        p.grad += g
    opt.step()
    for p, a, g in zip(params, arrays, grads):
        assert p.data is a
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_stays_float32(name):
    params = make_params(np.float32)
    opt = OPTIMIZERS[name](params)
    run(opt, params, grad_sequence(3, np.float32))
    for p in params:
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32
    for key, buf in opt.state_dict()["arrays"].items():
        assert buf.dtype == np.float32, key


def test_float32_close_to_float64_reference():
    params = make_params(np.float32)
    x0 = [p.data.copy() for p in params]
    grads = grad_sequence(5, np.float32)
    run(optim.Adam(params, lr=0.01, weight_decay=0.01), params, grads)
    expected = ref_adam(x0, grads, 0.01, 0.9, 0.999, 1e-8, 0.01)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-5, atol=1e-6)


def test_zero_grad():
    params = make_params()
    for p in params:
        p.grad += 1.0
    optim.SGD(params, lr=0.1).zero_grad()
    assert all(np.all(p.grad == 0) for p in params)


def test_lr_attribute_drives_the_update():
    p = Parameter(np.zeros(2))
    opt = optim.SGD([p], lr=0.1)
    opt.lr = 0.5
    p.grad[:] = 1.0
    opt.step()
    np.testing.assert_array_equal(p.data, [-0.5, -0.5])
    opt.lr = 0.0                      # allowed once built (schedules may reach 0)
    opt.step()
    np.testing.assert_array_equal(p.data, [-0.5, -0.5])
    with pytest.raises(ValueError, match="expected lr >= 0, received -1.0"):
        opt.lr = -1.0


# ---------------------------------------------------------------------------
# state dict
# ---------------------------------------------------------------------------

def save_and_load(state):
    """Round trip through npz (arrays) and JSON (scalars), without pickle."""
    buffer = io.BytesIO()
    np.savez(buffer, **state["arrays"])
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return {"arrays": arrays, "scalars": json.loads(json.dumps(state["scalars"]))}


RESUME_CASES = {
    "sgd_nesterov": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                          weight_decay=0.01),
                     lambda o: schedules.StepLR(o, step_size=3, gamma=0.5)),
    "sgd_plain": (lambda ps: optim.SGD(ps, lr=0.1), None),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
             lambda o: schedules.CosineLR(o, total_steps=10, warmup_steps=3, min_lr=1e-4)),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.01, betas=(0.8, 0.95)),
              lambda o: schedules.LinearWarmup(o, warmup_steps=4)),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resume_is_bit_identical(case, dtype):
    make_opt, make_sched = RESUME_CASES[case]
    grads = grad_sequence(10, dtype)
    k = 4

    # uninterrupted
    params = make_params(dtype)
    opt = make_opt(params)
    sched = make_sched(opt) if make_sched else None
    run(opt, params, grads, sched)

    # interrupted after k steps
    params_a = make_params(dtype)
    opt_a = make_opt(params_a)
    sched_a = make_sched(opt_a) if make_sched else None
    run(opt_a, params_a, grads[:k], sched_a)
    saved_data = [p.data.copy() for p in params_a]
    saved_opt = save_and_load(opt_a.state_dict())
    saved_sched = json.loads(json.dumps(sched_a.state_dict())) if sched_a else None
    run(opt_a, params_a, grads[k:k + 2], sched_a)      # keeps going: must not alter the save

    # fresh objects, different hyper-parameters given to the constructor on purpose
    params_b = make_params(dtype, seed=99)
    for p, d in zip(params_b, saved_data):
        p.data[...] = d
    opt_b = make_opt(params_b)
    opt_b.lr = 123.0
    sched_b = make_sched(opt_b) if make_sched else None
    opt_b.load_state_dict(saved_opt)
    if sched_b:
        sched_b.load_state_dict(saved_sched)
    assert opt_b.step_count == k
    run(opt_b, params_b, grads[k:], sched_b)

    for p, q in zip(params, params_b):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.lr == opt_b.lr
    a, b = opt.state_dict(), opt_b.state_dict()
    assert a["scalars"] == b["scalars"]
    assert a["arrays"].keys() == b["arrays"].keys()
    for key in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][key], b["arrays"][key])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_is_arrays_and_json_scalars(name):
    params = make_params()
    opt = OPTIMIZERS[name](params)
    run(opt, params, grad_sequence(2))
    state = opt.state_dict()
    assert set(state) == {"arrays", "scalars"}
    assert all(isinstance(k, str) for k in state["arrays"])
    assert all(type(v) is np.ndarray for v in state["arrays"].values())
    text = json.dumps(state["scalars"])
    assert json.loads(text) == state["scalars"]
    assert state["scalars"]["type"] == type(opt).__name__
    assert state["scalars"]["step"] == 2
    assert state["scalars"]["num_params"] == len(params)


def test_state_dict_contents_sgd():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    state = opt.state_dict()
    assert state["scalars"] == {"type": "SGD", "num_params": 3, "step": 0, "lr": 0.1,
                                "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
    # The buffers exist from the start, at zero: the first step then gives PyTorch's buf = g.
    assert sorted(state["arrays"]) == ["momentum.0", "momentum.1", "momentum.2"]
    assert all((a == 0).all() for a in state["arrays"].values())
    run(opt, params, grad_sequence(1))
    assert sorted(opt.state_dict()["arrays"]) == ["momentum.0", "momentum.1", "momentum.2"]
    assert sorted(optim.SGD(params, lr=0.1).state_dict()["arrays"]) == []


def test_state_dict_contents_adam():
    params = make_params()
    state = optim.Adam(params, lr=0.01, betas=(0.8, 0.9)).state_dict()
    assert sorted(state["arrays"]) == ["exp_avg.0", "exp_avg.1", "exp_avg.2",
                                       "exp_avg_sq.0", "exp_avg_sq.1", "exp_avg_sq.2"]
    assert state["scalars"] == {"type": "Adam", "num_params": 3, "step": 0, "lr": 0.01,
                                "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0}
    assert state["arrays"]["exp_avg.2"].shape == SHAPES[2]


def test_state_dict_arrays_are_copies():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, grad_sequence(1))
    state = opt.state_dict()
    before = state["arrays"]["momentum.0"].copy()
    run(opt, params, grad_sequence(1, seed=5))
    np.testing.assert_array_equal(state["arrays"]["momentum.0"], before)
    # and loading copies too
    opt.load_state_dict(state)
    run(opt, params, grad_sequence(1, seed=6))
    np.testing.assert_array_equal(state["arrays"]["momentum.0"], before)


def test_load_restores_hyperparameters():
    params = make_params()
    src = optim.Adam(params, lr=0.02, betas=(0.5, 0.6), eps=1e-3, weight_decay=0.2)
    dst = optim.Adam(params)
    dst.load_state_dict(save_and_load(src.state_dict()))
    assert (dst.lr, dst.betas, dst.eps, dst.weight_decay) == (0.02, (0.5, 0.6), 1e-3, 0.2)


def _sgd_state(steps=2):
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, grad_sequence(steps))
    return opt.state_dict()


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("arrays"), r"expected a dict with keys \['arrays', 'scalars'\], "
                                r"received \['scalars'\]"),
    (lambda s: s["scalars"].update(type="Adam"),
     "expected a state of optimizer type 'SGD', received 'Adam'"),
    (lambda s: s["scalars"].update(num_params=2),
     r"expected a state for 3 parameters \(scalar 'num_params'\), received 2"),
    (lambda s: s["arrays"].pop("momentum.1"),
     r"expected 3 buffers .* received 2 \(missing \['momentum.1'\], unexpected \[\]\)"),
    (lambda s: s["arrays"].update({"momentum.3": np.zeros(2)}),
     r"expected 3 buffers .* received 4 \(missing \[\], unexpected \['momentum.3'\]\)"),
    (lambda s: s["arrays"].update({"momentum.0": np.zeros((4, 3))}),
     r"expected buffer 'momentum.0' to have shape \(3, 4\) .* received \(4, 3\)"),
    (lambda s: s["arrays"].update({"momentum.1": np.zeros(5, np.float32)}),
     r"expected buffer 'momentum.1' to have dtype float64 .* received float32"),
    (lambda s: s["arrays"].update({"momentum.1": [0.0] * 5}),
     r"expected buffer 'momentum.1' to be a numpy array, received list"),
    (lambda s: s["scalars"].pop("nesterov"), r"missing \['nesterov'\]"),
    (lambda s: s["scalars"].update(extra=1), r"unexpected \['extra'\]"),
    (lambda s: s["scalars"].update(momentum=-0.5), "expected momentum >= 0, received -0.5"),
    (lambda s: s["scalars"].update(step=-1), "expected scalar 'step' >= 0, received -1"),
    (lambda s: s["scalars"].update(momentum=0.0), r"expected 0 buffers .*unexpected"),
    (lambda s: s["scalars"].update(lr="fast"), "expected scalar 'lr' to be a real number"),
])
def test_load_state_dict_errors(mutate, message):
    params = make_params()
    opt = optim.SGD(params, lr=0.5, momentum=0.9)
    state = _sgd_state()
    mutate(state)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(state)
    # nothing was changed by the failed load
    assert opt.step_count == 0 and opt.lr == 0.5
    assert all((a == 0).all() for a in opt.state_dict()["arrays"].values())


def test_load_state_from_other_optimizer_type():
    params = make_params()
    with pytest.raises(ValueError, match="expected a state of optimizer type 'AdamW', "
                                         "received 'Adam'"):
        optim.AdamW(params).load_state_dict(optim.Adam(params).state_dict())


# ---------------------------------------------------------------------------
# bad optimizer arguments
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda ps: optim.SGD(ps, lr=0.0), "expected lr > 0, received 0.0"),
    (lambda ps: optim.SGD(ps, lr=-0.1), "expected lr > 0, received -0.1"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), "expected a finite lr, received nan"),
    (lambda ps: optim.SGD(ps, lr=float("inf")), "expected a finite lr, received inf"),
    (lambda ps: optim.SGD(ps, lr="0.1"), "expected lr to be a real number, received '0.1'"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.9), "expected momentum >= 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True),
     "expected momentum > 0 when nesterov=True, received momentum=0.0"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=1), "expected nesterov to be a bool"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1e-4), "expected weight_decay >= 0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), r"expected betas\[1\] < 1, received 1.0"),
    (lambda ps: optim.Adam(ps, betas=(-0.1, 0.9)), r"expected betas\[0\] >= 0"),
    (lambda ps: optim.Adam(ps, betas=0.9), r"expected betas to be a pair"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), "expected eps >= 0"),
    (lambda ps: optim.AdamW(ps, weight_decay=-0.01), "expected weight_decay >= 0"),
    (lambda ps: optim.Adam(ps, lr=0), "^Adam: expected lr > 0, received 0.0"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_params())


def test_bad_params():
    p = Parameter(np.zeros(3), name="w")
    with pytest.raises(ValueError, match="expected a non-empty iterable of Parameter, "
                                         "received an empty one"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="received ndarray at index 1"):
        optim.SGD([p, np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match=r"expected distinct parameters, received "
                                         r"Parameter\(w, .*twice \(indices 0 and 2\)"):
        optim.SGD([p, Parameter(np.zeros(2)), p], lr=0.1)
    with pytest.raises(ValueError, match="received a single Parameter"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="expected an iterable of Parameter, received 3"):
        optim.SGD(3, lr=0.1)
    opt = optim.SGD(iter([p]), lr=0.1)      # any iterable, e.g. a generator
    assert opt.params == [p]
