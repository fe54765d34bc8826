"""Faces from photos: detection (`mtcnn`, the project's MTCNN on shipped weights, and the face rate metric),
alignment onto the training crop (`alignment`), projection into a latent (`projection`), pivotal tuning of a
private generator copy (`tuning`), the losses and PSNR those two share (`losses`), attribute edits (`edits`),
likeness (`likeness`), and the photo -> memory clip core call (`memory.memory_from_photo`). The photo and any tuned
weights stay in memory."""
