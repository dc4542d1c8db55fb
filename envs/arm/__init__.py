"""A planar two-link arm among obstacles: the C-space and workspace environments
(``idplan/ArmCSpace-v0``, ``idplan/ArmWorkspace-v0``), its geometry (kinematics, exact collision
checks, C-space maps on the torus, workspace images), datasets and rendering."""

from .cspace_env import ArmCSpaceEnv
from .dataset import (
    ArmDataset,
    ArmTorchDataset,
    generate_arm_dataset,
    generate_arm_shards,
    generate_arm_splits,
    load_arm_shards,
    save_arm_shards,
)
from .geometry import (
    DISC,
    RECTANGLE,
    ArmGeometry,
    arm_collides,
    bin_angles,
    bins_to_angles,
    check_bins,
    check_obstacles,
    cspace_maps,
    forward_kinematics,
    obstacle_distance,
    random_obstacles,
    workspace_images,
)
from .rendering import ArmRenderer
from .workspace_env import WORKSPACE_PIXELS, ArmWorkspaceEnv

__all__ = [
    # the environments
    "ArmCSpaceEnv",
    "ArmWorkspaceEnv",
    "WORKSPACE_PIXELS",
    # geometry
    "ArmGeometry",
    "DISC",
    "RECTANGLE",
    "check_bins",
    "check_obstacles",
    "bin_angles",
    "bins_to_angles",
    "forward_kinematics",
    "arm_collides",
    "obstacle_distance",
    "cspace_maps",
    "workspace_images",
    "random_obstacles",
    # datasets
    "ArmDataset",
    "ArmTorchDataset",
    "generate_arm_dataset",
    "generate_arm_splits",
    "generate_arm_shards",
    "save_arm_shards",
    "load_arm_shards",
    # rendering
    "ArmRenderer",
]
