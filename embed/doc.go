// Package embed computes image embeddings for visrec's visual cold start: a poster or product
// image goes in, a fixed-length float32 vector comes out, ready to travel on visrec.items as an
// events.Item.
//
// The model is MobileNetV2 (ONNX, statically quantized int8; see ../shared/models/README.md)
// run by ONNX Runtime through github.com/yalue/onnxruntime_go. The embedding is the global
// average pool of the last feature map (graph output "627", 1280×7×7 → 1280), so that rows
// match ../shared/data/movielens-posters/features/mobilenetv2_avgpool.f32 (cosine ≥ 0.999 per
// row; in practice identical), provided images are decoded and preprocessed exactly as
// Preprocess does.
//
// The pieces:
//
//   - FindLibrary and the process-wide ONNX Runtime environment (runtime.go);
//   - Decode, DecodeFile, Preprocess and PreprocessInto: Go's image decoders, nearest-neighbour
//     stretch to 224×224, ImageNet normalisation, NCHW (preprocess.go);
//   - Embedder: one ONNX Runtime session, batched inference, average pooling (embedder.go);
//   - Embedder.EmbedFiles: a pipeline over image files that decodes ahead of inference and
//     reports unreadable files per file instead of failing (files.go);
//   - importers and writers for precomputed features: raw .f32 + .ids, .npy (+ .ids) and the
//     VBPR binary format (features.go).
package embed
