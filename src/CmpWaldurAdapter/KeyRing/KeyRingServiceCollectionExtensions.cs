using CmpWaldurAdapter.KeyRing;
using CmpWaldurAdapter.Persistence;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

public static class KeyRingServiceCollectionExtensions
{
    /// <summary>
    /// Data Protection with its key ring in the adapter's database (every replica reads what another wrote), each key
    /// encrypted with the configured key-encryption key. Keys stored before one was configured stay readable (the
    /// framework reads unencrypted keys) and in plaintext until <c>db rewrap-key-ring</c> encrypts them (<see cref="KeyRingRewrap"/>).
    /// </summary>
    public static IServiceCollection AddAdapterKeyRing(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<KeyRingOptions>().Bind(configuration.GetSection(KeyRingOptions.SectionName)).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KeyRingOptions>, KeyRingOptionsValidation>());
        services.AddDataProtection()
            .SetApplicationName("CmpWaldurAdapter")
            .PersistKeysToDbContext<AdapterDbContext>();

        // Read through the validated options: a command that protects something on PostgreSQL without a key-encryption
        // key fails with the same configuration error as serve's start, rather than store a plaintext key.
        services.AddOptions<KeyManagementOptions>().Configure<IOptions<KeyRingOptions>>((management, ring) =>
        {
            if (KeyEncryptionKeys.From(ring.Value) is { } keys)
            {
                management.XmlEncryptor = new KeyRingXmlEncryptor(keys);
            }
        });
        return services;
    }
}
