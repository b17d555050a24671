/** Reading Hugging Face model directories: config.json, safetensors (sharded, packed BitNet), tokenizer. */
export { bytesReader, hfFilesFromFileList, hfFilesFromFileSystem, type FileLike, type HfFiles, type RangeReader } from './source.js';
export { FLOAT_DTYPES, STREAM_CHUNK_BYTES, decodeF32, openSafetensors, readTensorBytes, streamTensorF32, type SafetensorsFile } from './safetensors-stream.js';
export { HfCheckpointError, loadHfWeights, readHfWeights, unpackTernaryRows, type HfLoadProgress, type HfWeightsOptions, type HfWeightsReport } from './weights.js';
export { loadPretrained, type LoadPretrainedOptions, type Pretrained } from './pretrained.js';
