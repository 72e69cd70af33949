using System.Security.Cryptography;
using System.Xml.Linq;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.KeyRing;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Persistence;

/// <summary>
/// The Data Protection key ring lives in the adapter's database, beside the credentials its keys encrypt: each key is
/// stored encrypted with a key-encryption key held outside the database, so a dump or a read-only role decrypts
/// nothing. Proven on PostgreSQL, where production keeps it.
/// </summary>
public sealed class KeyRingEncryptionTests : IAsyncLifetime
{
    private static readonly string OtherKeyEncryptionKey = TestSecrets.Register(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), "another key-encryption key");

    private readonly WaldurFake _waldur = new();
    private TestDatabase _database = null!;

    public async Task InitializeAsync() => _database = await TestDatabase.CreateAsync(DatabaseProvider.Postgres);

    public async Task DisposeAsync()
    {
        _waldur.Dispose();
        await _database.DisposeAsync();
    }

    [Fact]
    public async Task The_stored_key_ring_holds_no_plaintext_master_key_and_only_the_same_key_encryption_key_reads_what_it_protected()
    {
        const string password = "langflow-password-of-a-tenant";
        string cipher;
        using (var first = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            cipher = Credentials(first).Protect(password);
        }

        var stored = await StoredKeysAsync();
        var key = Assert.Single(stored);
        Assert.DoesNotContain(key.Descendants(), e => e.Name.LocalName == "masterKey");
        var secret = Assert.Single(key.Descendants(), e => e.Name.LocalName == "encryptedSecret");
        Assert.Equal(typeof(KeyRingXmlDecryptor).FullName, ((string?)secret.Attribute("decryptorType"))?.Split(',')[0]);
        var encrypted = Assert.Single(secret.Elements(), e => e.Name.LocalName == "kekEncryptedKey");
        Assert.Equal(KeyEncryptionKey.Parse(TestDatabase.KeyEncryptionKey)!.Id, (string?)encrypted.Attribute("kekId"));
        Assert.Equal(12, Convert.FromBase64String((string)encrypted.Attribute("nonce")!).Length);
        Assert.Equal(16, Convert.FromBase64String((string)encrypted.Attribute("tag")!).Length);

        using (var same = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            Assert.Equal(password, Credentials(same).Unprotect(cipher));
        }

        using (var other = await StartAsync(OtherKeyEncryptionKey))
        {
            Assert.ThrowsAny<CryptographicException>(() => Credentials(other).Unprotect(cipher));
        }
    }

    [Fact]
    public async Task After_rotation_the_previous_key_encryption_key_still_reads_the_old_keys_and_new_keys_are_encrypted_with_the_new_one()
    {
        const string password = "langflow-password-before-rotation";
        string before;
        using (var old = await StartAsync(TestDatabase.KeyEncryptionKey))
        {
            before = Credentials(old).Protect(password);
        }

        using (var rotated = await StartAsync(OtherKeyEncryptionKey, previous: TestDatabase.KeyEncryptionKey))
        {
            Assert.Equal(password, Credentials(rotated).Unprotect(before));

            // A key made now (as the ring makes one before the old expires) is encrypted with the new key alone.
            var now = DateTimeOffset.UtcNow;
            rotated.Services.GetRequiredService<IKeyManager>().CreateNewKey(now, now.AddDays(90));
        }

        var ids = (await StoredKeysAsync())
            .Select(k => (string?)k.Descendants().Single(e => e.Name.LocalName == "kekEncryptedKey").Attribute("kekId"))
            .ToList();
        // The key made before the rotation keeps the old key-encryption key; every key made since has the new one.
        var oldId = KeyEncryptionKey.Parse(TestDatabase.KeyEncryptionKey)!.Id;
        var newId = KeyEncryptionKey.Parse(OtherKeyEncryptionKey)!.Id;
        Assert.Equal(1, ids.Count(id => id == oldId));
        Assert.Contains(newId, ids);
        Assert.All(ids, id => Assert.True(id == oldId || id == newId, $"kekId {id} is neither key-encryption key"));

        // Without the previous key the old key's values are unreadable, while the new key serves: no key is added.
        using (var only = await StartAsync(OtherKeyEncryptionKey))
        {
            Assert.ThrowsAny<CryptographicException>(() => Credentials(only).Unprotect(before));
            Assert.Equal(password, Credentials(only).Unprotect(Credentials(only).Protect(password)));
        }

        Assert.Equal(ids.Count, (await StoredKeysAsync()).Count);
    }

    /// <summary><c>serve</c> on PostgreSQL without a key-encryption key stops before serving, saying how to make one.</summary>
    [Fact]
    public async Task Serve_on_postgres_without_a_key_encryption_key_refuses_to_start_naming_the_option_unless_told_to_allow_it()
    {
        var settings = Settings(key: null);
        var error = new StringWriter();
        var context = new CommandContext(new StringWriter(), error, configureServer: builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.Services.AddSingleton<ILogEventSink>(new CapturedLogs());
        });

        var exitCode = await AdapterCli.RunAsync(["serve", "--urls", $"http://127.0.0.1:{LoopbackPorts.Free()}"], context).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(ExitCodes.Error, exitCode);
        Assert.Contains("Configuration error", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("DataProtection:KeyEncryptionKey is required with Database:Provider=Postgres", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("openssl rand -base64 32", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("DataProtection:AllowUnencryptedKeyRing", error.ToString(), StringComparison.Ordinal);

        // The explicit opt-out starts, with the key ring stored as before and a warning.
        settings["DataProtection:AllowUnencryptedKeyRing"] = "true";
        var logs = new CapturedLogs();
        using (var optedOut = await AdapterTestHost.StartServicesAsync(settings, logs))
        {
            Credentials(optedOut).Protect("anything");
        }

        Assert.Contains("masterKey", (await StoredKeysAsync()).Single().ToString(), StringComparison.Ordinal);
    }

    private Dictionary<string, string?> Settings(string? key, string? previous = null)
    {
        var settings = AdapterTestHost.Settings(_waldur, _database);
        settings["DataProtection:KeyEncryptionKey"] = key;
        if (previous is not null)
        {
            settings["DataProtection:PreviousKeyEncryptionKeys:0"] = previous;
        }

        return settings;
    }

    private Task<IHost> StartAsync(string key, string? previous = null) => AdapterTestHost.StartServicesAsync(Settings(key, previous));

    private static UpstreamCredentials Credentials(IHost host) => new(host.Services.GetRequiredService<IDataProtectionProvider>());

    /// <summary>The rows as stored, read by a host that is not started: a started one loads the ring, and may add a key to it.</summary>
    private async Task<List<XElement>> StoredKeysAsync()
    {
        using var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(Settings(TestDatabase.KeyEncryptionKey)));
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return (await db.DataProtectionKeys.AsNoTracking().ToListAsync()).Select(k => XElement.Parse(k.Xml!)).ToList();
    }
}
