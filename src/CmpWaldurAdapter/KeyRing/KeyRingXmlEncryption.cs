using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.KeyRing;

/// <summary>
/// Encrypts each key of the Data Protection key ring before it is stored: AES-256-GCM under the key-encryption key,
/// a random 12-byte nonce per key, and the key-encryption key's id in the element, so a rotated key knows which of the
/// configured keys decrypts it. The framework wraps the element in <c>encryptedSecret</c> naming
/// <see cref="KeyRingXmlDecryptor"/>, which it creates to read the key back.
/// </summary>
internal sealed class KeyRingXmlEncryptor(KeyEncryptionKeys keys) : IXmlEncryptor
{
    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        var kek = keys.Current;
        var plaintext = Encoding.UTF8.GetBytes(plaintextElement.ToString(SaveOptions.DisableFormatting));
        var nonce = RandomNumberGenerator.GetBytes(KeyRingXml.NonceLength);
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[KeyRingXml.TagLength];
        using (var aes = new AesGcm(kek.Key, KeyRingXml.TagLength))
        {
            aes.Encrypt(nonce, plaintext, ciphertext, tag, KeyRingXml.AssociatedData(kek.Id));
        }

        CryptographicOperations.ZeroMemory(plaintext);
        var element = new XElement(KeyRingXml.Element,
            new XAttribute(KeyRingXml.VersionAttribute, KeyRingXml.Version),
            new XAttribute(KeyRingXml.KeyIdAttribute, kek.Id),
            new XAttribute(KeyRingXml.NonceAttribute, Convert.ToBase64String(nonce)),
            new XAttribute(KeyRingXml.TagAttribute, Convert.ToBase64String(tag)),
            new XElement(KeyRingXml.ValueElement, Convert.ToBase64String(ciphertext)));
        return new EncryptedXmlInfo(element, typeof(KeyRingXmlDecryptor));
    }
}

/// <summary>Reads a key <see cref="KeyRingXmlEncryptor"/> stored, with whichever configured key-encryption key encrypted it.</summary>
public sealed class KeyRingXmlDecryptor : IXmlDecryptor
{
    private readonly KeyEncryptionKeys? _keys;

    /// <summary>The framework creates decryptors by type name, with this constructor.</summary>
    public KeyRingXmlDecryptor(IServiceProvider services) =>
        _keys = KeyEncryptionKeys.From(services.GetRequiredService<IOptions<KeyRingOptions>>().Value);

    public XElement Decrypt(XElement encryptedElement)
    {
        if (encryptedElement.Name != KeyRingXml.Element || (string?)encryptedElement.Attribute(KeyRingXml.VersionAttribute) != KeyRingXml.Version)
        {
            throw new CryptographicException($"The key ring element is not a version {KeyRingXml.Version} {KeyRingXml.Element.LocalName} element.");
        }

        var id = (string?)encryptedElement.Attribute(KeyRingXml.KeyIdAttribute) ?? string.Empty;
        var kek = _keys?.Find(id) ?? throw new CryptographicException(
            $"A key of the Data Protection key ring was encrypted with key-encryption key {id}, which is neither {KeyRingOptions.SectionName}:{nameof(KeyRingOptions.KeyEncryptionKey)} " +
            $"nor one of {KeyRingOptions.SectionName}:{nameof(KeyRingOptions.PreviousKeyEncryptionKeys)}: what it protects cannot be read until that key is configured again.");

        var nonce = Convert.FromBase64String((string?)encryptedElement.Attribute(KeyRingXml.NonceAttribute) ?? string.Empty);
        var tag = Convert.FromBase64String((string?)encryptedElement.Attribute(KeyRingXml.TagAttribute) ?? string.Empty);
        var ciphertext = Convert.FromBase64String((string?)encryptedElement.Element(KeyRingXml.ValueElement) ?? string.Empty);
        var plaintext = new byte[ciphertext.Length];
        using (var aes = new AesGcm(kek.Key, KeyRingXml.TagLength))
        {
            // Throws AuthenticationTagMismatchException (a CryptographicException) for a changed element.
            aes.Decrypt(nonce, ciphertext, tag, plaintext, KeyRingXml.AssociatedData(kek.Id));
        }

        try
        {
            return XElement.Parse(Encoding.UTF8.GetString(plaintext));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }
}

/// <summary>The stored form shared by the encryptor and the decryptor.</summary>
internal static class KeyRingXml
{
    public const string Version = "1";
    public const int NonceLength = 12;
    public const int TagLength = 16;

    public static readonly XName Element = "kekEncryptedKey";
    public static readonly XName ValueElement = "value";
    public static readonly XName VersionAttribute = "version";
    public static readonly XName KeyIdAttribute = "kekId";
    public static readonly XName NonceAttribute = "nonce";
    public static readonly XName TagAttribute = "tag";

    /// <summary>Binds the ciphertext to the format and the key id it names: an edited id fails to decrypt.</summary>
    public static byte[] AssociatedData(string keyId) => Encoding.ASCII.GetBytes($"CmpWaldurAdapter key ring v{Version}\0{keyId}");
}
