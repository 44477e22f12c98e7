# LaVIN-13B on ScienceQA (QCM-ALE). Model part; the training recipe is added with the training issue.
_base_ = ['./_base_/models/lavin_13b.py']
default_scope = 'mma'
