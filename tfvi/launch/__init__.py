"""absl launchers: `tfvi-train` (`tfvi.launch.train`) and `tfvi-eval`
(`tfvi.launch.evaluate`). See `tfvi.launch.train` for the extension points."""
