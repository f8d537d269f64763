"""CPU renderer: one Embree ray per pixel centre (embreex, the library trimesh uses), the default
backend because it needs neither a GPU nor Blender."""

from __future__ import annotations

import numpy as np
import trimesh

from hi3dgen.data.cameras import Camera
from hi3dgen.render.backend import View, base_colour, lambert_srgb, version


class EmbreeBackend:
    name = "embree"

    def __init__(self):
        try:
            import embreex  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(f"render backend 'embree' needs the embreex package: {exc}") from exc
        self.version = version(self.name)

    def render(self, mesh: trimesh.Trimesh, cameras: list[Camera], seed: int = 0, rgb: bool = True) -> list[View]:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        scene = rtcore_scene.EmbreeScene()
        TriangleMesh(
            scene=scene, vertices=np.asarray(mesh.vertices, np.float32), indices=np.asarray(mesh.faces, np.int32)
        )
        face_normals = np.asarray(mesh.face_normals, np.float64)
        base = base_colour(seed)
        return [self._view(scene, face_normals, cam, base if rgb else None) for cam in cameras]

    @staticmethod
    def _view(scene, face_normals: np.ndarray, cam: Camera, base) -> View:
        origins, directions = cam.world_rays()
        hit = scene.run(origins.astype(np.float32), directions.astype(np.float32), output=1)
        tri = hit["primID"]
        mask = tri >= 0
        depth = np.zeros(len(tri), np.float32)
        forward = -cam.rotation[:, 2]
        depth[mask] = hit["tfar"][mask] * (directions[mask] @ forward)  # ray length -> along -Z
        normal = np.zeros((len(tri), 3), np.float32)
        normal[mask] = face_normals[tri[mask]] @ cam.rotation  # world -> camera
        shape = (cam.height, cam.width)
        view = View(normal.reshape(*shape, 3), mask.reshape(shape), depth.reshape(shape))
        if base is not None:
            colour = np.round(lambert_srgb(view.normal, base) * 255).astype(np.uint8)
            colour[~view.mask] = 0
            view.rgb = colour
        return view
