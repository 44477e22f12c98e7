"""A synthetic dataset in ScienceQA's real layout, answerable only from the image (image
questions) or only from the text (text-only questions).

Layout written under ``root``: ``problems.json``, ``pid_splits.json``, ``captions.json`` and
``images/{split}/{qid}/image.png``, with the fields the real ScienceQA files have.
"""
import json
import os
import random
from typing import Dict, List

COLOURS = {'red': (220, 30, 30), 'green': (30, 170, 40), 'blue': (30, 60, 220),
           'yellow': (235, 200, 20)}
SHAPES = ('circle', 'square', 'triangle')
CITIES = ('London', 'Paris', 'Rome', 'Berlin')
NAMES = ('Anna', 'Ben', 'Carla', 'Dev', 'Emma', 'Farid', 'Gina', 'Hugo')
THINGS = ('kite', 'ball', 'car', 'hat', 'box', 'cup')

#: The options of each question kind, in a fixed order (chance = 1 / number of options).
CHOICES = {
    'image_colour': list(COLOURS),
    'image_shape': list(SHAPES),
    'text_colour': list(COLOURS),
    'text_city': list(CITIES),
}


def draw(shape: str, colour: str, rng: random.Random, size: int = 32):
    """A ``shape`` of ``colour`` at a random place and size on a light background."""
    from PIL import Image, ImageDraw
    bg = tuple(rng.randint(225, 255) for _ in range(3))
    img = Image.new('RGB', (size, size), bg)
    d = ImageDraw.Draw(img)
    r = rng.randint(size // 5, size // 3)
    cx, cy = rng.randint(r, size - r - 1), rng.randint(r, size - r - 1)
    fill = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLOURS[colour])
    if shape == 'circle':
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == 'square':
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def _problem(kind: str, rng: random.Random, split: str) -> Dict:
    grade = f'grade{rng.randint(1, 12)}'
    p = dict(hint='', image=None, task='closed choice', grade=grade, split=split,
             lecture='', solution='', choices=list(CHOICES[kind]))
    if kind == 'image_colour':
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        p.update(question='What colour is the shape in the picture?', subject='natural science',
                 topic='colours', category='Identify colours', skill='colour',
                 answer=p['choices'].index(colour), _draw=(shape, colour),
                 lecture='Colours are seen in pictures.', solution=f'The {shape} is {colour}.')
    elif kind == 'image_shape':
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        p.update(question='Which shape is shown in the picture?', subject='natural science',
                 topic='shapes', category='Identify shapes', skill='shape',
                 answer=p['choices'].index(shape), _draw=(shape, colour),
                 lecture='Shapes are seen in pictures.', solution=f'It is a {colour} {shape}.')
    elif kind == 'text_colour':
        colour, thing, name = rng.choice(list(COLOURS)), rng.choice(THINGS), rng.choice(NAMES)
        p.update(question=f'What colour is the {thing} of {name}?', subject='language science',
                 hint=f'{name} has a {colour} {thing}.', topic='reading', skill='reading',
                 category='Read a sentence', answer=p['choices'].index(colour),
                 lecture='Read the context.', solution=f'The {thing} is {colour}.')
    else:
        city, name = rng.choice(CITIES), rng.choice(NAMES)
        p.update(question=f'In which city does {name} live?', subject='social science',
                 hint=f'{name} lives in {city}.', topic='geography', skill='reading',
                 category='Read a sentence', answer=p['choices'].index(city),
                 lecture='Read the context.', solution=f'{name} lives in {city}.')
    return p


def write_synthetic_scienceqa(root: str, n_train: int = 1200, n_val: int = 100,
                              n_test: int = 400, seed: int = 0, image_size: int = 32) -> Dict:
    """Write the dataset; returns ``{split: [qid, ...]}``. Half the questions have an image."""
    rng = random.Random(seed)
    problems, splits = {}, {}
    kinds = list(CHOICES)
    qid = 0
    for split, n in (('train', n_train), ('val', n_val), ('test', n_test)):
        ids: List[str] = []
        for i in range(n):
            qid += 1
            key = str(qid)
            p = _problem(kinds[i % len(kinds)], rng, split)
            drawing = p.pop('_draw', None)
            if drawing is not None:
                p['image'] = 'image.png'
                folder = os.path.join(root, 'images', split, key)
                os.makedirs(folder, exist_ok=True)
                draw(*drawing, rng, image_size).save(os.path.join(folder, 'image.png'))
            problems[key] = p
            ids.append(key)
        splits[split] = ids
    splits['trainval'] = splits['train'] + splits['val']
    splits['minival'] = splits['val'][:max(1, n_val // 2)]
    splits['minitest'] = splits['test'][:max(1, n_test // 2)]
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'problems.json'), 'w') as f:
        json.dump(problems, f)
    with open(os.path.join(root, 'pid_splits.json'), 'w') as f:
        json.dump(splits, f)
    with open(os.path.join(root, 'captions.json'), 'w') as f:
        json.dump({'captions': {k: '' for k, p in problems.items() if p['image']}}, f)
    return splits
