"""Write a tiny text encoder (random-weight T5 or Qwen3 + a tokenizer trained on a corpus) that
``HFTextEncoder`` loads offline like a hub model (gear.models.text.tiny).

    python tools/make_tiny_text_encoder.py --family t5 --out data/text_encoders/t5_tiny
    python tools/make_tiny_text_encoder.py --family qwen3 --out DIR --corpus captions.txt

The default corpus is the CPU demo's captions: every caption template over every Fashion-MNIST
class name (gear.datasets.caption_sources), so the demo never meets an unknown word.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from gear.models.text import write_tiny_text_encoder  # noqa: E402


def default_corpus() -> list:
    """The demo captions: each template with each class name (and its article)."""
    try:
        from gear.datasets.caption_sources import CAPTION_NAMES, TEMPLATES
    except ImportError:  # an older tree without the caption demo: the bare class names
        from gear.datasets.fashion_mnist import CLASSES
        CAPTION_NAMES, TEMPLATES = tuple(c.lower() for c in CLASSES), ('a photo of {a}',)
    corpus = []
    for name in CAPTION_NAMES:
        a = ('an ' if name[0] in 'aeiou' else 'a ') + name
        corpus += [t.format(a=a, name=name) for t in TEMPLATES]
    return corpus


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Write a tiny offline text encoder.')
    parser.add_argument('--family', choices=('t5', 'qwen3'), default='t5')
    parser.add_argument('--out', required=True, help='the directory to write')
    parser.add_argument('--corpus', help='a text file, one caption per line (default: the '
                        'Fashion-MNIST demo captions)')
    parser.add_argument('--hidden-size', type=int, default=32)
    parser.add_argument('--num-layers', type=int, default=2)
    parser.add_argument('--num-heads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.corpus:
        with open(args.corpus, encoding='utf-8') as f:
            corpus = [line.strip() for line in f if line.strip()]
    else:
        corpus = default_corpus()
    out = write_tiny_text_encoder(args.out, args.family, corpus, hidden_size=args.hidden_size,
                                  num_layers=args.num_layers, num_heads=args.num_heads,
                                  seed=args.seed)
    print(f'{args.family} text encoder (hidden size {args.hidden_size}, {len(corpus)} corpus '
          f'lines) written to {out}')


if __name__ == '__main__':
    main()
