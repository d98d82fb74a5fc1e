"""The device a command line uses when none is given: the first CUDA GPU if there is one."""
import torch


def default_device() -> str:
    """'cuda' where torch sees a GPU, else 'cpu' (evaluated when a parser is built)."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


DEVICE_HELP = "torch device (default: 'cuda' if a GPU is visible, else 'cpu')"


def device_name(device) -> str:
    """What benchmark JSON records as the device: the GPU's name, or the CPU's."""
    import platform
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
