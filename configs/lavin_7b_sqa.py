# LaVIN-7B on ScienceQA (QCM-ALE). Model part; the training recipe is added with the training issue.
_base_ = ['./_base_/models/lavin_7b.py']
default_scope = 'mma'
