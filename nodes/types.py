"""Socket types of the pack. Every custom type starts with ``GID_`` so it never clashes with the
types of other packs; each carries a ``gid_models`` object unchanged."""

# gid_models.spectral.SpectralVolume
SPECTRAL_VOLUME = "GID_SPECTRAL_VOLUME"
# gid_models.motion.MotionTexture (evaluated lazily, a chunk of frames at a time)
MOTION = "GID_MOTION"
# the motion latent diffusion model (VAE, denoiser, image encoder, normalization statistics)
MOTION_MODEL = "GID_MOTION_MODEL"
# the image-based renderer
RENDERER = "GID_RENDERER"
# loop self-guidance settings for the sampler
GUIDANCE = "GID_GUIDANCE"

CATEGORY = "Generative Image Dynamics"
