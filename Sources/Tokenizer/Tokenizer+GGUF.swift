import GGUF

extension GGUFFile: TokenizerMetadata {}

extension Tokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.*` metadata.
    public convenience init(gguf: GGUFFile) throws {
        try self.init(metadata: gguf)
    }
}
