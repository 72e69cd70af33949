namespace CmpWaldurAdapter.KeyRing;

/// <summary>
/// How the Data Protection key ring, kept in the adapter's database, is itself protected (configuration section
/// <c>DataProtection</c>). Its keys encrypt the tenants' upstream credentials and sign console links, so a database
/// dump must not carry the means to read them: each key is stored encrypted with a key-encryption key held outside it.
/// </summary>
public sealed class KeyRingOptions
{
    public const string SectionName = "DataProtection";

    /// <summary>Base64 of 32 random bytes (<c>openssl rand -base64 32</c>); a secret. Encrypts every key created from now on.</summary>
    public string? KeyEncryptionKey { get; set; }

    /// <summary>Earlier key-encryption keys, read only to decrypt keys created under them (rotation); secrets.</summary>
    public List<string> PreviousKeyEncryptionKeys { get; set; } = [];

    /// <summary>On PostgreSQL, start without a key-encryption key anyway (keys stored in plaintext, as before).</summary>
    public bool AllowUnencryptedKeyRing { get; set; }
}
