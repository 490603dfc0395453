"""Drop-in adapters of the one SAS transform for other augmentation frameworks.

Each module is a thin layer over :class:`sas_fast.SAS` (``SASConfig.sample`` + ``sas_fast.augment``)
and imports its framework when it is itself imported (``import sas_fast`` imports none of them):

* :mod:`sas_fast.integrations.albumentations` -- ``SAS``, an albumentations ``DualTransform``
  (``pip install "sas_fast[albumentations]"``);
* :mod:`sas_fast.integrations.torchvision` -- ``SAS``, a torchvision v2 ``Transform``
  (``pip install "sas_fast[torchvision]"``);
* :mod:`sas_fast.integrations.monai` -- ``RandSASd``, a MONAI dictionary transform
  (``pip install "sas_fast[monai]"``).

Reproducibility: sas_fast's output depends only on ``(sas_seed, sample id)``.  None of these
frameworks passes the sample's index to a transform, so each adapter reads the id from a key of the
sample (``sample_id_key="sample_id"`` by default).  Without one it draws a fresh id from the
framework's own random state (albumentations' / MONAI's generator, torch's for torchvision): the
output is then random but depends on call order and on how the framework seeds DataLoader workers,
exactly like the framework's other random transforms.
"""

__all__: list[str] = []
