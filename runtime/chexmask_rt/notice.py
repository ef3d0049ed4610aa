"""What every output says about its use. The C++ core declares the same text
(``chexmask_rt::kIntendedUse`` in chexmask_rt.hpp); tests check that the two agree."""

INTENDED_USE = "research use only; not for diagnosis"
