import torch
from torch import nn

from debiasbench.methods.base import Batch, MethodContext, resolve_hparams
from debiasbench.methods.vanilla import Vanilla


def test_vanilla_step_is_plain_cross_entropy_descent():
    torch.manual_seed(0)
    ctx = MethodContext(
        dataset="toy",
        num_classes=3,
        num_train=4,
        train_targets=torch.tensor([0, 1, 2, 0]),
        device=torch.device("cpu"),
        model_factory=lambda: nn.Linear(5, 3),
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.5),
        train_inputs=lambda index: torch.zeros(len(index), 5),
        unit_inputs=lambda x: x,
    )
    method = Vanilla(resolve_hparams(Vanilla, "toy"), ctx)
    x, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 0])
    weight = method.net.weight.detach().clone()
    reference = nn.Linear(5, 3)
    reference.load_state_dict(method.net.state_dict())
    nn.functional.cross_entropy(reference(x), y).backward()

    output = method.train_step(Batch(index=torch.arange(4), x=x, y=y))

    torch.testing.assert_close(method.net.weight.detach(), weight - 0.5 * reference.weight.grad)
    assert output.per_sample_loss["main"].shape == (4,)
    assert Vanilla.supervision.value == "none"
