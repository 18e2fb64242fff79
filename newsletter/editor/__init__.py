"""Editor: the editor's tools around a build -- preview, screenshots, the web archive, a new project's scaffold."""
