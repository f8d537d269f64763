"""Photoreal RGB with Blender (bpy as a module, Cycles on CPU): randomized principled materials with a
procedural texture and randomized lighting, seeded per asset, so NiRNE sees varied lit inputs.

Each view is rendered twice: a one-sample data render whose material override emits the
camera-space true normal (pixel-centre rays, no filter), with the depth pass and alpha, so normals,
masks and depths match the other backends; then the lit RGB image. Blender's outputs are read back with
the OpenImageIO that ships inside bpy. bpy is one global session per process: the scene is reset
for every asset.
"""

from __future__ import annotations

import colorsys
import os
import sys
import tempfile

import numpy as np
import trimesh

from hi3dgen.data.cameras import Camera
from hi3dgen.render.backend import View, version

RGB_SAMPLES = 32
# procedural texture node -> its scalar output
TEXTURES = {
    "ShaderNodeTexNoise": "Fac",
    "ShaderNodeTexVoronoi": "Distance",
    "ShaderNodeTexWave": "Fac",
    "ShaderNodeTexChecker": "Fac",
    "ShaderNodeTexMagic": "Fac",
}


def _import_bpy():
    try:
        import bpy
    except ImportError as exc:
        raise RuntimeError(
            "render backend 'blender' needs the bpy package (Blender as a Python module, "
            f"bpy==5.0.1 for Python 3.11): {exc}"
        ) from exc
    bundled = os.path.join(
        bpy.utils.resource_path("LOCAL"),
        "python",
        "lib",
        f"python{sys.version_info.major}.{sys.version_info.minor}",
        "site-packages",
    )
    if bundled not in sys.path:
        sys.path.append(bundled)  # OpenImageIO ships there, built for this Python
    return bpy


class BlenderBackend:
    name = "blender"

    def __init__(self, samples: int = RGB_SAMPLES):
        self.bpy = _import_bpy()
        import OpenImageIO

        self.oiio = OpenImageIO
        self.samples = samples
        self.version = version(self.name)

    def render(self, mesh: trimesh.Trimesh, cameras: list[Camera], seed: int = 0, rgb: bool = True) -> list[View]:
        bpy = self.bpy
        rng = np.random.default_rng(seed)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        _setup_render(scene, cameras[0], seed)
        obj = _add_mesh(bpy, scene, mesh)
        cam = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
        scene.collection.objects.link(cam)
        scene.camera = cam
        views = []
        with tempfile.TemporaryDirectory(prefix="hi3dgen-blender-") as tmp:
            scene.render.filepath = os.path.join(tmp, "data.exr")
            _data_settings(scene, _normal_material(bpy))
            for camera in cameras:
                _place_camera(cam, camera, scene)
                _render(bpy)
                views.append(self._read_data(scene.render.filepath))
            if rgb:
                obj.data.materials.append(_random_material(bpy, rng))
                _random_lights(bpy, scene, rng)
                scene.render.filepath = os.path.join(tmp, "rgb.png")
                _rgb_settings(scene, self.samples)
                for camera, view in zip(cameras, views):
                    _place_camera(cam, camera, scene)
                    _render(bpy)
                    ch = self._read(scene.render.filepath, "uint8")
                    view.rgb = np.stack([ch[c] for c in "RGB"], axis=-1)
        return views

    def _read(self, path: str, fmt: str = "float") -> dict[str, np.ndarray]:
        """Channels by name ("R", or "Depth.Z" of a multilayer EXR), across all its parts."""
        img = self.oiio.ImageInput.open(path)
        if img is None:
            raise RuntimeError(f"blender backend: cannot read its render {path}: {self.oiio.geterror()}")
        channels = {}
        try:
            part = 0
            while img.seek_subimage(part, 0):
                spec = img.spec()
                pixels = np.asarray(img.read_image(part, 0, 0, spec.nchannels, fmt))
                for i, name in enumerate(spec.channelnames):
                    channels[name.split(".", 1)[-1]] = pixels[..., i]
                part += 1
        finally:
            img.close()
        return channels

    def _read_data(self, path: str) -> View:
        ch = self._read(path)
        mask = ch["Combined.A"] > 0.5
        normal = np.stack([ch[f"Combined.{c}"] for c in "RGB"], axis=-1) * 2.0 - 1.0
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
        normal[~mask] = 0
        depth = ch["Depth.Z"].astype(np.float32)
        depth[~mask] = 0
        return View(normal.astype(np.float32), mask, depth)


def _render(bpy) -> None:
    """Render the still to its file, keeping Blender's per-frame log lines off stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        bpy.ops.render.render(write_still=True)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _setup_render(scene, camera: Camera, seed: int) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.render.resolution_x = camera.width
    scene.render.resolution_y = camera.height
    scene.render.resolution_percentage = 100
    scene.cycles.use_adaptive_sampling = False  # per-pixel stopping would make bytes vary
    scene.cycles.use_denoising = False
    scene.cycles.seed = seed % 2**31
    threads = int(os.environ.get("OMP_NUM_THREADS", "0"))  # Ray sets it to the task's CPUs
    scene.render.threads_mode = "FIXED" if threads > 0 else "AUTO"
    if threads > 0:
        scene.render.threads = threads
    scene.view_layers[0].use_pass_z = True
    scene.render.use_compositing = False


def _data_settings(scene, material) -> None:
    """One pixel-centre sample per pixel of an unlit material: exact normals, alpha and depth."""
    scene.view_layers[0].material_override = material
    scene.cycles.samples = 1
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 0.01
    scene.cycles.max_bounces = 0
    scene.render.film_transparent = True
    settings = scene.render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"
    settings.exr_codec = "NONE"


def _rgb_settings(scene, samples: int) -> None:
    scene.view_layers[0].material_override = None
    scene.cycles.samples = samples
    scene.cycles.pixel_filter_type = "BLACKMAN_HARRIS"
    scene.cycles.filter_width = 1.5
    scene.cycles.max_bounces = 6
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "AgX"
    scene.render.dither_intensity = 0.0  # dither noise would also light the black background
    settings = scene.render.image_settings
    settings.media_type = "IMAGE"
    settings.file_format = "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "8"


def _add_mesh(bpy, scene, mesh: trimesh.Trimesh):
    """The mesh from arrays (no importer: no axis conversion, no merging), flat shaded."""
    vertices = np.asarray(mesh.vertices, np.float32)
    faces = np.asarray(mesh.faces, np.int32)
    me = bpy.data.meshes.new("asset")
    me.vertices.add(len(vertices))
    me.vertices.foreach_set("co", vertices.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.update()
    me.shade_flat()
    obj = bpy.data.objects.new("asset", me)
    scene.collection.objects.link(obj)
    return obj


def _place_camera(cam, camera: Camera, scene) -> None:
    """Blender cameras look down local -Z with +Y up, like OpenGL: c2w is the object's matrix."""
    centre = np.array([camera.width, camera.height]) / 2
    if not np.allclose(camera.K[:2, 2], centre):
        raise ValueError("blender backend supports centred principal points only")
    import mathutils

    cam.matrix_world = mathutils.Matrix(camera.c2w.tolist())
    cam.data.sensor_fit = "HORIZONTAL"
    cam.data.angle_x = 2 * np.arctan(camera.width / (2 * camera.K[0, 0]))
    cam.data.clip_start = 0.01
    cam.data.clip_end = 100.0
    scene.render.pixel_aspect_x = 1.0
    scene.render.pixel_aspect_y = camera.K[0, 0] / camera.K[1, 1]


def _normal_material(bpy):
    """Emits (n * 0.5 + 0.5) of the true face normal in OpenGL camera space. Cycles flips normals
    of back faces toward the ray; `Backfacing` undoes that so every backend keeps the winding."""
    mat = bpy.data.materials.new("normal")
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    geo = nodes.new("ShaderNodeNewGeometry")
    sign = nodes.new("ShaderNodeMath")
    sign.operation = "MULTIPLY_ADD"  # 1 - 2 * backfacing
    sign.inputs[1].default_value = -2.0
    sign.inputs[2].default_value = 1.0
    links.new(geo.outputs["Backfacing"], sign.inputs[0])
    flip = nodes.new("ShaderNodeVectorMath")
    flip.operation = "SCALE"
    links.new(geo.outputs["True Normal"], flip.inputs[0])
    links.new(sign.outputs[0], flip.inputs["Scale"])
    to_cam = nodes.new("ShaderNodeVectorTransform")
    to_cam.vector_type = "NORMAL"
    to_cam.convert_from = "WORLD"
    to_cam.convert_to = "CAMERA"
    links.new(flip.outputs[0], to_cam.inputs[0])
    encode = nodes.new("ShaderNodeVectorMath")
    encode.operation = "MULTIPLY_ADD"  # Blender's camera space has +Z forward: flip Z
    encode.inputs[1].default_value = (0.5, 0.5, -0.5)
    encode.inputs[2].default_value = (0.5, 0.5, 0.5)
    links.new(to_cam.outputs[0], encode.inputs[0])
    emit = nodes.new("ShaderNodeEmission")
    links.new(encode.outputs[0], emit.inputs["Color"])
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(emit.outputs[0], out.inputs["Surface"])
    return mat


def _random_material(bpy, rng: np.random.Generator):
    """Principled BSDF whose base colour mixes two random colours through a random procedural
    texture (which also bumps the surface a little), with random roughness and metallic."""
    mat = bpy.data.materials.new("surface")
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = [float(rng.uniform(1.0, 12.0))] * 3
    mapping.inputs["Rotation"].default_value = rng.uniform(0, np.pi, 3).tolist()
    links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    kind = sorted(TEXTURES)[rng.integers(len(TEXTURES))]
    tex = nodes.new(kind)
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    fac = tex.outputs[TEXTURES[kind]]
    ramp = nodes.new("ShaderNodeValToRGB")
    links.new(fac, ramp.inputs["Fac"])
    for element in ramp.color_ramp.elements:
        hsv = (rng.uniform(), rng.uniform(0.0, 0.9), rng.uniform(0.05, 0.9))
        element.color = (*colorsys.hsv_to_rgb(*hsv), 1.0)
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bump = nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = float(rng.uniform(0.0, 0.3))
    bump.inputs["Distance"].default_value = 0.005
    links.new(fac, bump.inputs["Height"])
    links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    bsdf.inputs["Roughness"].default_value = float(rng.uniform(0.15, 0.95))
    metallic = rng.uniform(0.6, 1.0) if rng.uniform() < 0.3 else 0.0
    bsdf.inputs["Metallic"].default_value = float(metallic)
    return mat


def _random_lights(bpy, scene, rng: np.random.Generator) -> None:
    """A sun, an area light and a uniform world of random strengths and directions. The world is
    black to camera rays, so the background stays black like the other backends'."""
    import mathutils

    sun = bpy.data.lights.new("sun", "SUN")
    sun.energy = float(rng.uniform(2.0, 6.0))
    sun.angle = float(rng.uniform(0.01, 0.2))
    area = bpy.data.lights.new("area", "AREA")
    area.energy = float(rng.uniform(50.0, 400.0))
    area.size = float(rng.uniform(0.5, 3.0))
    for light in (sun, area):
        obj = bpy.data.objects.new(light.name, light)
        az, el = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(10), np.radians(80))
        direction = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
        obj.location = (3.0 * direction).tolist()
        # lights shine down their local -Z: point +Z away from the origin
        track = mathutils.Vector(direction.tolist()).to_track_quat("Z", "Y")
        obj.rotation_euler = track.to_euler()
        scene.collection.objects.link(obj)
    world = scene.world = bpy.data.worlds.new("world")
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    tint = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0, 0.3), 1.0)
    background.inputs["Color"].default_value = (*tint, 1.0)
    background.inputs["Strength"].default_value = float(rng.uniform(0.3, 1.5))
    path = nodes.new("ShaderNodeLightPath")
    black = nodes.new("ShaderNodeBackground")
    black.inputs["Color"].default_value = (0.0, 0.0, 0.0, 1.0)
    mix = nodes.new("ShaderNodeMixShader")
    links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
    links.new(background.outputs[0], mix.inputs[1])
    links.new(black.outputs[0], mix.inputs[2])
    links.new(mix.outputs[0], nodes["World Output"].inputs["Surface"])
