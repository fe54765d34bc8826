"""Generation: seeds -> images (`pipeline.FacePipeline`), seeds -> clips (`video`), two models side by side
(`compare`), image -> upscaled image (`upscale`, with the optional diffusers backend). Pure rendering functions
and separate writers; every output carries its recipe."""
