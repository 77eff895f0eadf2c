"""The fast path trains the same models as one-by-one skorch fits.

skorch itself is the sequential reference: with the same seed, ``clone(net).fit`` builds the
same initial weights and visits the same minibatches as the fast path, so parameters must
agree to float tolerance. Each equivalence test also checks that a *different* seed gives
clearly different parameters, so a comparison that could never fail would be noticed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from torch import nn

skorch = pytest.importorskip("skorch")
from skorch import NeuralNetClassifier  # noqa: E402

from dvl_jupyter.models import SimpleCNN  # noqa: E402
from dvl_jupyter.valuation import fastpath  # noqa: E402
from dvl_jupyter.valuation.fastpath import kernel as fk  # noqa: E402
from dvl_jupyter.valuation.fastpath.vmap import StackedOptimizer  # noqa: E402

ATOL, RTOL = 2e-5, 1e-4
SIZES = [1, 5, 16, 37, 70]  # batch 16: 1, 1, 1, 3 and 5 steps per epoch, last batches smaller


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_net(module=SimpleCNN, **kw):
    params = dict(criterion=nn.CrossEntropyLoss, lr=0.01, max_epochs=3, batch_size=16,
                  train_split=None, optimizer=torch.optim.Adam, verbose=False)
    params.update(kw)
    return NeuralNetClassifier(module, **params)


def skorch_fit(net, x, y, subset, seed):
    torch.manual_seed(seed)
    model = clone(net)
    model.fit(x[subset], y[subset])
    return model


def subsets_of(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.permutation(n)[:k] for k in sizes]


def max_diff(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    return max(float((a[k].detach().cpu() - b[k].detach().cpu()).abs().max()) for k in a)


def assert_states_close(a: dict, b: dict) -> None:
    for key in a:
        torch.testing.assert_close(a[key].detach().cpu(), b[key].detach().cpu(), atol=ATOL,
                                   rtol=RTOL, msg=lambda m, key=key: f"{key}: {m}")


CONFIGS = {
    "adam": {},
    "adamw": dict(optimizer=torch.optim.AdamW, optimizer__weight_decay=0.05),
    "adam-amsgrad-l2": dict(optimizer__amsgrad=True, optimizer__weight_decay=1e-3,
                            optimizer__betas=(0.8, 0.99)),
    "sgd-momentum": dict(optimizer=torch.optim.SGD, lr=0.1, optimizer__momentum=0.9),
    "sgd-nesterov": dict(optimizer=torch.optim.SGD, lr=0.1, optimizer__momentum=0.9,
                         optimizer__nesterov=True, optimizer__weight_decay=1e-3),
    "shuffle": dict(iterator_train__shuffle=True),
    "nll": dict(criterion=nn.NLLLoss),
    "ce-smoothing-sum": dict(criterion__label_smoothing=0.1, criterion__reduction="sum",
                             lr=0.002),
}


# -- equivalence with one-by-one skorch fits ---------------------------------------------------
@pytest.mark.parametrize("trainer", ["kernel", "vmap"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_fit_many_equals_skorch_fits(digits, trainer, config):
    """Mixed subset sizes in one call: each model matches its own sequential skorch fit."""
    x, y, _, _ = digits
    net = make_net(**CONFIGS[config])
    subsets = subsets_of(SIZES, len(x))
    seeds = [101, 102, 103, 104, 105]
    result = fastpath.train_models(net, x, y, subsets, seeds, trainer=trainer)
    assert result.trainer == trainer
    states = result.states()
    for k, (subset, seed) in enumerate(zip(subsets, seeds, strict=True)):
        ref = skorch_fit(net, x, y, subset, seed)
        assert_states_close(states[k], ref.module_.state_dict())
        np.testing.assert_allclose(result.losses[k], ref.history[:, "train_loss"], rtol=1e-4,
                                   atol=1e-5)
    # the comparison can fail: another seed gives another model
    other = skorch_fit(net, x, y, subsets[-1], 999)
    assert max_diff(states[-1], other.module_.state_dict()) > 1e-3


def test_reference_configuration_24_epochs(digits):
    """SimpleCNN, batch 128, 24 epochs: the reference setting, on two subset sizes."""
    x, y, _, _ = digits
    net = make_net(max_epochs=24, batch_size=128)
    subsets = subsets_of([60, 150], len(x), seed=3)
    states = fastpath.fit_many(net, x, y, subsets, [7, 8])
    for state, subset, seed in zip(states, subsets, [7, 8], strict=True):
        assert_states_close(state, skorch_fit(net, x, y, subset, seed).module_.state_dict())


@pytest.mark.parametrize("trainer", ["kernel", "vmap"])
def test_model_is_independent_of_its_neighbours(digits, trainer):
    """A small model trained next to bigger ones (more steps per epoch) is the model trained
    alone: it is never stepped when it has no minibatch."""
    x, y, _, _ = digits
    net = make_net()
    small, big = subsets_of([3, 90], len(x), seed=5)
    alone = fastpath.fit_many(net, x, y, [small], [11], trainer=trainer)[0]
    together = fastpath.fit_many(net, x, y, [big, small, big], [12, 11, 13], trainer=trainer)[1]
    assert max_diff(alone, together) < 1e-6


@pytest.mark.parametrize("trainer", ["kernel", "vmap"])
def test_module_instance_is_the_start_of_every_model(digits, trainer):
    """A module passed as an instance is reused by skorch: every fit starts from its weights,
    and fitting or scoring never changes them."""
    x, y, x_test, _ = digits
    torch.manual_seed(0)
    module = SimpleCNN()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    net = make_net(module)
    subsets = subsets_of([9, 40], len(x), seed=2)
    fastpath.fit_score_many(net, x, y, subsets, [1, 2], lambda m: 0.0, trainer=trainer)
    states = fastpath.fit_many(net, x, y, subsets, [3, 4], trainer=trainer)
    for state, subset in zip(states, subsets, strict=True):
        assert_states_close(state, skorch_fit(net, x, y, subset, 5).module_.state_dict())
    assert max_diff(module.state_dict(), before) == 0.0


def test_stacked_optimizer_leaves_skipped_rows_alone():
    """Rows without a step keep their exact values; a zero-gradient Adam step would not."""
    flat = torch.randn(2, 6)
    opt = StackedOptimizer("adam", dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                                        weight_decay=0.0, amsgrad=False, maximize=False,
                                        decoupled=False), flat)
    opt.step(flat, torch.randn(2, 6), np.array([0, 1]))
    frozen = flat[1].clone()
    opt.step(flat, torch.randn(2, 6), np.array([0]))
    assert torch.equal(flat[1], frozen)
    assert opt.steps.tolist() == [2, 1]
    opt.step(flat, torch.zeros(2, 6), np.array([1]))  # what masking prevents
    assert not torch.equal(flat[1], frozen)


OPTIMIZERS = [
    (torch.optim.Adam, dict(lr=0.01)),
    (torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1, betas=(0.5, 0.9), eps=1e-6)),
    (torch.optim.SGD, dict(lr=0.1)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
]


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS)
def test_stacked_optimizer_matches_torch_optim(cls, kwargs):
    """K rows with different step schedules equal K separate torch optimizers."""
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(3, 5, generator=gen)
    refs = [flat[i].clone().requires_grad_() for i in range(3)]
    torch_opts = [cls([p], **kwargs) for p in refs]
    net = NeuralNetClassifier(nn.Linear, optimizer=cls, **{f"optimizer__{k}": v
                                                           for k, v in kwargs.items()})
    net.set_params(module__in_features=5, module__out_features=1)
    net.initialize()
    kind, hyper = fastpath.spec._optimizer_spec(net)
    opt = StackedOptimizer(kind, hyper, flat)
    for step in range(6):
        grad = torch.randn(3, 5, generator=gen)
        rows = np.array([0, 1, 2]) if step % 2 == 0 else np.array([0, 2])
        opt.step(flat, grad, rows)
        for i in rows:
            refs[i].grad = grad[i].clone()
            torch_opts[i].step()
    torch.testing.assert_close(flat, torch.stack([p.detach() for p in refs]), atol=1e-6,
                               rtol=1e-5)


# -- the C kernel against torch autograd ------------------------------------------------------
class StridedNet(nn.Module):
    """Strided and dilated convolutions, even kernel with 'same' padding, AvgPool, LeakyReLU,
    Tanh, LogSoftmax: the layout cases the code generator must get right."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.act1 = nn.LeakyReLU(0.1)
        self.c2 = nn.Conv2d(3, 10, (2, 3), dilation=(1, 2), padding="same", bias=False)
        self.act2 = nn.Tanh()
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(40, 7)
        self.out = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = self.act2(self.c2(self.act1(self.c1(x))))
        return self.out(self.fc(torch.flatten(self.pool(x), 1)))


class PoolNet(nn.Module):
    """Nine output channels (a partial register tile), overlapping max-pool windows, a
    sigmoid hidden layer and a bias-free linear layer before a softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 9, 4, padding="same")
        self.pool = nn.MaxPool2d(3, stride=2)
        self.hidden = nn.Linear(81, 20)
        self.fc = nn.Linear(20, 10, bias=False)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        x = torch.sigmoid(self.hidden(x.view(x.size(0), -1)))
        return F.softmax(self.fc(x), dim=1)


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 33), nn.ReLU(), nn.Linear(33, 4))

    def forward(self, x):
        return self.layers(x)


class PoolFlattenTanhNet(nn.Module):
    """An element-wise layer right after max-pool and flatten: it must not overwrite the pool's
    output, which the pool's backward reads (flatten shares its buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.act = nn.Tanh()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.act(self.flat(self.pool(self.conv(x)))))


@pytest.mark.parametrize("module_cls", [SimpleCNN, StridedNet, PoolNet, Mlp, PoolFlattenTanhNet])
def test_kernel_forward_and_gradient_match_autograd(digits, module_cls):
    x, y, _, _ = digits
    torch.manual_seed(0)
    module = module_cls()
    kernel = fk.get_kernel(module, (1, 8, 8))
    assert isinstance(kernel, fk.Kernel), kernel
    xb, yb = x[:37], y[:37] % 4  # 37 rows: two full SIMD groups and a partial one
    out = module(torch.from_numpy(xb))
    loss = F.cross_entropy(out, torch.from_numpy(yb))
    grads = torch.autograd.grad(loss, list(module.parameters()))
    params = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()
    np.testing.assert_allclose(kernel.predict(xb.reshape(37, -1), params[None])[0],
                               out.detach().numpy(), atol=1e-5)
    expected = torch.cat([g.reshape(-1) for g in grads]).numpy()
    np.testing.assert_allclose(kernel.sgd_step(xb, yb, params[None])[0], expected, atol=2e-6,
                               rtol=1e-4)


def test_kernel_self_check_compares_gradients_too(monkeypatch):
    """A kernel whose forward pass is right but whose training step is not is refused, with
    a reason; a correct one passes."""
    from dvl_jupyter.valuation.fastpath.kernel.runtime import _self_check

    torch.manual_seed(0)
    module = Mlp()
    kernel = fk.get_kernel(module, (1, 8, 8))
    assert isinstance(kernel, fk.Kernel) and _self_check(kernel, module, (1, 8, 8)) is None
    train = kernel.train

    def off_by_a_bit(xs, ys, orders, n_sub, params, *args, **kwargs):
        out = train(xs, ys, orders, n_sub, params, *args, **kwargs)
        params[:, :5] += 0.05  # as a wrong backward pass would
        return out

    monkeypatch.setattr(kernel, "train", off_by_a_bit)  # the kernel is cached: undo after
    reason = _self_check(kernel, module, (1, 8, 8))
    assert reason is not None and "gradient differs from autograd" in reason


def test_kernel_declines_what_it_does_not_implement():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 64)
            self.out = nn.Linear(64, 10)

        def forward(self, x):
            x = x.flatten(1)
            return self.out(x + self.fc(x))

    class WithDropout2d(SimpleCNN):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout2d(0.3)  # channel-wise masks: not implemented

        def forward(self, x):
            return super().forward(self.drop(x))

    assert "simple chain" in fk.get_kernel(Residual(), (1, 8, 8))
    assert "Dropout2d (drop)" in fk.get_kernel(WithDropout2d(), (1, 8, 8))
    assert "groups" in fk.get_kernel(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Flatten()),
                                     (2, 8, 8))


# -- reasons -------------------------------------------------------------------------------------
class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(144, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.bn1(self.conv(x))), 1))


class DropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 48)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(48, 10)

    def forward(self, x):
        return F.softmax(self.fc2(self.drop(F.relu(self.fc1(x.flatten(1))))), dim=1)


class PoolDropoutNet(nn.Module):
    """Dropout right after max-pool and flatten (a common place for it): the kernel must keep
    the pool's output for its backward and mask a separate buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.flatten(self.pool(F.relu(self.conv(x))), 1)
        return F.softmax(self.fc(self.drop(x)), dim=1)


class Dropout2dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.drop = nn.Dropout2d(0.3)
        self.fc = nn.Linear(144, 10)

    def forward(self, x):
        return F.softmax(self.fc(torch.flatten(self.drop(F.relu(self.conv(x))), 1)), dim=1)


@pytest.mark.parametrize("module_cls", [PoolFlattenTanhNet, PoolDropoutNet])
def test_kernel_self_check_refuses_a_layer_that_overwrites_what_backward_needs(
        monkeypatch, module_cls):
    """Were max-pool not known to read its output in backward, the layer after it would work
    in place and spoil it. The forward pass stays right, so only the gradient check (for
    dropout: on a variant whose masks are all 1.5) can see it; it must refuse the kernel."""
    from dvl_jupyter.valuation.fastpath.kernel import codegen
    from dvl_jupyter.valuation.fastpath.kernel import runtime as kernel

    torch.manual_seed(0)
    assert isinstance(fk.get_kernel(module_cls(), (1, 8, 8)), fk.Kernel)
    monkeypatch.setattr(codegen, "_NEEDS_OUTPUT",
                        tuple(k for k in codegen._NEEDS_OUTPUT if k != "maxpool"))
    monkeypatch.setattr(kernel, "_KERNELS", {})
    reason = fk.get_kernel(module_cls(), (1, 8, 8))
    assert isinstance(reason, str) and "gradient differs from autograd" in reason, reason


def test_unsupported_reasons():
    from skorch.callbacks import GradientNormClipping, LRScheduler
    from skorch.dataset import ValidSplit

    assert fastpath.unsupported_reason(make_net()) is None
    reason = fastpath.unsupported_reason(make_net(BatchNormNet))
    assert "BatchNorm2d (bn1)" in reason and "running statistics" in reason
    reason = fastpath.unsupported_reason(make_net(callbacks=[LRScheduler(step_every="batch")]))
    assert "LRScheduler" in reason
    assert "GradientNormClipping" in fastpath.unsupported_reason(
        make_net(callbacks=[("clip", GradientNormClipping(1.0))]))
    assert "RMSprop" in fastpath.unsupported_reason(make_net(optimizer=torch.optim.RMSprop))
    assert "train_split" in fastpath.unsupported_reason(make_net(train_split=ValidSplit(3)))
    assert "MSELoss" in fastpath.unsupported_reason(make_net(criterion=nn.MSELoss))
    assert "not a skorch" in fastpath.unsupported_reason(object())
    with pytest.raises(ValueError, match="BatchNorm2d"):
        fastpath.fit_many(make_net(BatchNormNet), np.zeros((4, 1, 8, 8), np.float32),
                          np.zeros(4, np.int64), [np.arange(2)], [0])


def test_probe_turns_torch_func_failures_into_a_reason(digits):
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = x.flatten(1)
            if x.sum() > 0:  # data-dependent control flow: fine in eager, not under vmap
                x = x * 2
            return F.softmax(self.fc(x), dim=1)

    x, y, _, _ = digits
    net = make_net(DataDependent)
    assert fastpath.unsupported_reason(net) is None  # structurally fine
    trainer, why = fastpath.trainer_for(net, x)
    assert trainer == "vmap" and "cannot trace" in why
    reason = fastpath.unsupported_reason(net, x[:4], y[:4])
    assert reason is not None and "probe" in reason and "vmap" in reason


def test_dropout_net_takes_the_kernel_backend(digits):
    x, y, _, _ = digits
    net = make_net(DropoutNet)
    assert fastpath.unsupported_reason(net, x[:4], y[:4]) is None
    assert fastpath.trainer_for(net, x) == ("kernel", None)
    # what the kernel cannot take still gets the vmap trainer, with the reason
    trainer, why = fastpath.trainer_for(net, x.astype(np.float64))
    assert trainer == "vmap" and "float64" in why
    trainer, why = fastpath.trainer_for(make_net(Dropout2dNet), x)
    assert trainer == "vmap" and "Dropout2d (drop)" in why


@pytest.mark.parametrize("trainer", ["kernel", "vmap"])
def test_dropout_training_is_a_function_of_the_seeds(digits, trainer):
    """Dropout masks come from the models' seeds, not from torch's global RNG: the same
    block trains the same models whatever ran before, and other seeds train other ones."""
    x, y, _, _ = digits
    net = make_net(DropoutNet, max_epochs=2)
    subsets = subsets_of([30, 60], len(x), seed=2)
    first = fastpath.fit_many(net, x, y, subsets, [5, 6], trainer=trainer)
    torch.rand(1000)  # move the global RNG on
    again = fastpath.fit_many(net, x, y, subsets, [5, 6], trainer=trainer)
    other = fastpath.fit_many(net, x, y, subsets, [7, 8], trainer=trainer)
    assert max(max_diff(a, b) for a, b in zip(first, again, strict=True)) == 0.0
    assert min(max_diff(a, b) for a, b in zip(first, other, strict=True)) > 1e-4


def _dropout_kernel_step(module, xb, yb, seeds):
    """One SGD step (lr 1) of len(seeds) copies of ``module`` on the batch ``xb``: the
    kernel's parameter gradients, one row per model."""
    kernel = fk.get_kernel(module, (1, 8, 8))
    assert isinstance(kernel, fk.Kernel), kernel
    params = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy()
    return kernel.sgd_step(xb, yb, np.repeat(params[None], len(seeds), axis=0), seeds)


def test_kernel_dropout_draws_a_mask_per_model_and_sample(digits):
    """With one sample, the hidden units dropped are the zero columns of fc2's gradient:
    each model's gradient is autograd's under that mask (scaled by 1/(1-p)), about p of the
    live units are dropped, the masks differ between models, and a seed repeats its mask."""
    x, y, _, _ = digits
    torch.manual_seed(0)
    module = DropoutNet()
    xb, yb = x[5:6], y[5:6]
    seeds = list(range(200))
    grads = _dropout_kernel_step(module, xb, yb, seeds)
    n1, n2 = 64 * 48 + 48, 48 * 10
    live = (F.relu(module.fc1(torch.from_numpy(xb).flatten(1))) > 0).numpy()[0]
    assert live.sum() > 10
    dropped, masks = [], set()
    for g in grads:
        kept = np.abs(g[n1:n1 + n2].reshape(10, 48)).sum(axis=0) > 0
        masks.add(kept[live].tobytes())
        dropped.append(1.0 - kept[live].mean())
        mask = torch.from_numpy(kept.astype(np.float32) / np.float32(0.7))
        h = F.relu(module.fc1(torch.from_numpy(xb).flatten(1))) * mask
        loss = F.cross_entropy(F.softmax(module.fc2(h), dim=1), torch.from_numpy(yb))
        ref = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, module.parameters())])
        np.testing.assert_allclose(g, ref.numpy(), atol=1e-6)
    n_draws = len(seeds) * live.sum()
    assert abs(np.mean(dropped) - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n_draws)
    assert len(masks) > 0.9 * len(seeds)
    np.testing.assert_array_equal(_dropout_kernel_step(module, xb, yb, seeds[:3]), grads[:3])
    # 16 copies of the sample in one minibatch (one SIMD group): every lane has its own mask,
    # so a unit is dropped for all of them with probability 0.3**16, not 0.3
    g16 = _dropout_kernel_step(module, np.repeat(xb, 16, axis=0), np.repeat(yb, 16), [7])[0]
    assert (np.abs(g16[n1:n1 + n2].reshape(10, 48)).sum(axis=0)[live] > 0).all()


def test_kernel_dropout_changes_training_and_predict_ignores_it(digits):
    """From the same initial weights (a module instance), p=0.3 models differ by seed and
    from the p=0 model, while p=0 models are all the same; predictions are the module's in
    eval mode (no dropout)."""
    x, y, x_test, _ = digits
    torch.manual_seed(0)
    module = DropoutNet()
    plain = DropoutNet()
    plain.load_state_dict(module.state_dict())
    plain.drop.p = 0.0
    subset = subsets_of([90], len(x), seed=1)[0]
    fits = {}
    for name, m in (("drop", module), ("plain", plain)):
        net = make_net(m)
        result = fastpath.train_models(net, x, y, [subset] * 3, [1, 2, 1], trainer="kernel")
        assert result.trainer == "kernel"
        fits[name] = result.states()
    drop, base = fits["drop"], fits["plain"]
    assert max_diff(base[0], base[1]) == 0.0
    assert max_diff(drop[0], drop[2]) == 0.0  # a seed repeats its masks
    assert max_diff(drop[0], drop[1]) > 1e-3
    assert max_diff(drop[0], base[0]) > 1e-3
    net = make_net(DropoutNet)
    probs = fastpath.predict_proba_many(net, drop, x_test, trainer="kernel")
    for k, state in enumerate(drop):
        loaded = clone(net).initialize()  # skorch predicts in eval mode
        loaded.module_.load_state_dict(state)
        np.testing.assert_allclose(probs[k], loaded.predict_proba(x_test), atol=1e-6)
    # the comparison can fail: in training mode the module's outputs are others
    kernel = fk.get_kernel(loaded.module_, (1, 8, 8))
    params = torch.cat([p.detach().reshape(-1) for p in loaded.module_.parameters()]).numpy()
    out = kernel.predict(x_test.reshape(len(x_test), -1), params[None])[0]
    loaded.module_.train()
    with torch.no_grad():
        training_out = loaded.module_(torch.from_numpy(x_test)).numpy()
        eval_out = loaded.module_.eval()(torch.from_numpy(x_test)).numpy()
    np.testing.assert_allclose(out, eval_out, atol=1e-6)
    assert np.abs(out - training_out).max() > 1e-2


# -- outputs, scoring, side effects -----------------------------------------------------------
@pytest.mark.parametrize("trainer", ["kernel", "vmap"])
def test_states_load_and_predict_like_skorch(digits, trainer):
    x, y, x_test, _ = digits
    net = make_net(max_epochs=2)
    subsets = subsets_of([20, 45], len(x), seed=9)
    states = fastpath.fit_many(net, x, y, subsets, [1, 2], trainer=trainer)
    probs = fastpath.predict_proba_many(net, states, x_test, trainer=trainer)
    assert probs.shape == (2, len(x_test), 10)
    for k, state in enumerate(states):
        loaded = clone(net).initialize()
        loaded.module_.load_state_dict(state)
        np.testing.assert_allclose(probs[k], loaded.predict_proba(x_test), atol=1e-6)


def test_fit_score_many_scores_each_model_as_a_fitted_net(digits):
    x, y, x_test, y_test = digits
    net = make_net(max_epochs=2)
    subsets = subsets_of([4, 30, 80], len(x), seed=4)
    seeds = [5, 6, 7]

    def accuracy(model):
        return float(np.mean(model.predict(x_test) == y_test))

    scores = fastpath.fit_score_many(net, x, y, subsets, seeds, accuracy)
    expected = [accuracy(skorch_fit(net, x, y, s, seed)) for s, seed in zip(subsets, seeds,
                                                                            strict=True)]
    np.testing.assert_allclose(scores, expected, atol=1.5 / len(y_test))
    n_classes = fastpath.fit_score_many(net, x, y, subsets, seeds,
                                        lambda model: float(len(model.classes_)))
    assert n_classes.tolist() == [float(len(np.unique(y[s]))) for s in subsets]


def test_accuracy_scorer_shortcut_gives_the_scorers_numbers(digits):
    """The package's accuracy scorer is computed from batched outputs: same values as calling
    the scorer on each loaded net (a wrapper defeats the shortcut)."""
    from dvl_jupyter.valuation import SkorchSupervisedScorer

    x, y, x_test, y_test = digits
    net = make_net(max_epochs=2)
    scorer = SkorchSupervisedScorer(net, test_data=(x_test, y_test), range=(0.0, 0.3))
    subsets = subsets_of([3, 25, 60, 100], len(x), seed=8)
    spec = fastpath.spec.net_spec(net)
    assert fastpath.scoring._accuracy_scorer(net, spec, scorer) is not None
    fast = fastpath.fit_score_many(net, x, y, subsets, [1, 2, 3, 4], scorer)
    generic = fastpath.fit_score_many(net, x, y, subsets, [1, 2, 3, 4], lambda m: scorer(m))
    np.testing.assert_array_equal(fast, generic)
    assert fast.max() <= 0.3 and len(set(fast.tolist())) > 1


def test_global_rng_and_inputs(digits):
    x, y, _, _ = digits
    net = make_net(max_epochs=1)
    state = torch.get_rng_state()
    fastpath.fit_many(net, x, y, subsets_of([10], len(x)), [3])
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="empty"):
        fastpath.fit_many(net, x, y, [np.array([], dtype=np.int64)], [0])
    with pytest.raises(ValueError, match="seeds"):
        fastpath.fit_many(net, x, y, [np.arange(3)], [0, 1])
    with pytest.raises(ValueError, match="outside"):
        fastpath.fit_many(net, x, y, [np.array([0, len(x)])], [0])


# -- statistics: random subsets, independent initialisations ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("module", "trainer"), [(SimpleCNN, "kernel"), (DropoutNet, "vmap"),
                                                 (DropoutNet, "kernel"),
                                                 (PoolDropoutNet, "kernel")])
def test_mean_accuracy_matches_one_by_one(digits, module, trainer):
    """Over random subsets, fast-path and one-by-one test accuracy agree within 3 standard
    errors, with *independent* seeds (so this does not lean on identical initialisation, and
    covers dropout, whose masks both backends draw their own way)."""
    x, y, x_test, y_test = digits
    net = make_net(module, max_epochs=8, batch_size=32)
    rng = np.random.default_rng(21)
    subsets = [rng.permutation(len(x))[: rng.integers(20, 200)] for _ in range(24)]

    def accuracy(model):
        return float(np.mean(model.predict(x_test) == y_test))

    fast = fastpath.fit_score_many(net, x, y, subsets, list(range(1000, 1024)), accuracy,
                                   trainer=trainer)
    slow = np.array([accuracy(skorch_fit(net, x, y, s, 2000 + i))
                     for i, s in enumerate(subsets)])
    diff = fast - slow  # paired by subset: the subset explains most of the variance
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert abs(diff.mean()) < 3 * se + 1e-9, (diff.mean(), se, fast.mean(), slow.mean())
    assert slow.mean() > 0.3  # well above chance (0.1): the comparison means something
