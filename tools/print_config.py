"""Print a config fully resolved (bases merged, helper variables dropped, overrides checked and
applied: gear.engine.config_check.read_config), as the runner will see it.

    python tools/print_config.py configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py
    python tools/print_config.py CONFIG --cfg-options train_cfg.max_iters=10 --check
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from gear.engine.config_check import ConfigError, check_config, read_config  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Print the resolved config.')
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--check', action='store_true', help='also run the config checks')
    args = parser.parse_args(argv)
    try:
        cfg = read_config(args.config, args.cfg_options)
    except ConfigError as e:
        sys.exit(f'config error in {args.config}: {e}')
    print(cfg.pretty_text)
    if args.check:
        try:
            check_config(cfg)
        except ConfigError as e:
            sys.exit(f'config error in {args.config}: {e}')
        print('# config check: OK')


if __name__ == '__main__':
    main()
