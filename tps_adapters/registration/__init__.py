"""Prior-course registration and dose mapping: DICOM Spatial Registration objects, rigid and
deformable SimpleITK registration of the prior CT onto the new CT, trilinear mapping of the prior
dose with an optional conservative margin, and the QA figure. See docs/importing.md."""
from .deformable import DEFORMABLE_WARNING, DeformableSettings, jacobian_statistics, register_deformable
from .errors import RegistrationError, RegistrationWarning
from .images import grid_of, to_image
from .mapping import map_to_grid, mapped_points, max_within_margin, sample
from .reg_objects import SpatialRegistration, find_registrations, read_registration, reg_registration
from .result import Registration, affine_transform, identity_registration
from .rigid import RigidSettings, register_rigid

__all__ = [
    "Registration", "RegistrationError", "RegistrationWarning", "RigidSettings", "DeformableSettings",
    "DEFORMABLE_WARNING", "SpatialRegistration", "register_rigid", "register_deformable", "jacobian_statistics",
    "read_registration", "find_registrations", "reg_registration", "identity_registration", "affine_transform",
    "map_to_grid", "mapped_points", "max_within_margin", "sample", "to_image", "grid_of",
]
