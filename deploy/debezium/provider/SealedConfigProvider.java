package hub.connect;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.apache.kafka.common.config.ConfigData;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.provider.ConfigProvider;

/**
 * Opens values the hub sealed (core/crypto.py: AES-256-GCM, a data key per value wrapped by a
 * master key) when Kafka Connect resolves {@code ${hub:<file>:<name>}} in a connector's config.
 *
 * <p>The Debezium worker then reads its database password without it ever being on disk in
 * plain text: the file holds {@code name=v1:<key id>:<wrapped data key>:<ciphertext>} lines
 * (base64url), and the master keys come from HUB_MASTER_KEYS or the hub's key file, as in
 * every other hub process. The AAD is {@code connect/<name>}, so a value copied under another
 * name does not open.
 */
public final class SealedConfigProvider implements ConfigProvider {
  private static final int NONCE = 12;
  private static final int TAG_BITS = 128;
  private final Map<String, byte[]> keys = new HashMap<>();

  @Override
  public void configure(Map<String, ?> configs) {
    String inline = System.getenv("HUB_MASTER_KEYS");
    Object file = configs.get("keys.file");
    try {
      if (inline != null && !inline.isBlank()) {
        parseInline(inline);
      } else if (file != null) {
        parseFile(Path.of(file.toString()));
      }
    } catch (IOException | IllegalArgumentException e) {
      throw new ConfigException("hub config provider: cannot read the master keys: " + e);
    }
    if (keys.isEmpty()) {
      throw new ConfigException(
          "hub config provider: no master keys (set HUB_MASTER_KEYS or keys.file)");
    }
  }

  private void parseInline(String text) {
    for (String item : text.split(",")) {
      String entry = item.strip();
      int colon = entry.indexOf(':');
      if (entry.isEmpty() || colon < 0) {
        continue;
      }
      keys.put(entry.substring(0, colon).strip(), b64(entry.substring(colon + 1).strip()));
    }
  }

  private void parseFile(Path path) throws IOException {
    JsonNode root = new ObjectMapper().readTree(path.toFile());
    for (JsonNode entry : root.path("keys")) {
      keys.put(entry.path("id").asText(), b64(entry.path("key").asText()));
    }
  }

  private static byte[] b64(String text) {
    return Base64.getUrlDecoder().decode(text.replace("=", ""));
  }

  @Override
  public ConfigData get(String path) {
    return get(path, null);
  }

  @Override
  public ConfigData get(String path, Set<String> names) {
    Properties sealed = new Properties();
    try (Reader reader = Files.newBufferedReader(Path.of(path), StandardCharsets.UTF_8)) {
      sealed.load(reader);
    } catch (IOException e) {
      throw new ConfigException("hub config provider: cannot read " + path + ": " + e);
    }
    Map<String, String> opened = new HashMap<>();
    for (String name : sealed.stringPropertyNames()) {
      if (names == null || names.contains(name)) {
        opened.put(name, open(name, sealed.getProperty(name)));
      }
    }
    return new ConfigData(opened);
  }

  String open(String name, String value) {
    String[] parts = value.strip().split(":");
    if (parts.length != 4 || !parts[0].equals("v1")) {
      throw new ConfigException("hub config provider: " + name + " is not a sealed v1 value");
    }
    byte[] master = keys.get(parts[1]);
    if (master == null) {
      throw new ConfigException(
          "hub config provider: " + name + " is sealed with master key " + parts[1]
              + ", which this worker does not hold");
    }
    try {
      byte[] dataKey = decrypt(master, b64(parts[2]), parts[1]);
      return new String(
          decrypt(dataKey, b64(parts[3]), "connect/" + name), StandardCharsets.UTF_8);
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      // Never the value or the key: only which name failed and that it did not open.
      throw new ConfigException("hub config provider: " + name + " does not open (tampered?)");
    }
  }

  private static byte[] decrypt(byte[] key, byte[] blob, String aad)
      throws GeneralSecurityException {
    if (blob.length < NONCE + TAG_BITS / 8) {
      throw new GeneralSecurityException("truncated");
    }
    Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
    cipher.init(
        Cipher.DECRYPT_MODE,
        new SecretKeySpec(key, "AES"),
        new GCMParameterSpec(TAG_BITS, Arrays.copyOfRange(blob, 0, NONCE)));
    cipher.updateAAD(aad.getBytes(StandardCharsets.UTF_8));
    return cipher.doFinal(Arrays.copyOfRange(blob, NONCE, blob.length));
  }

  @Override
  public void close() {
    keys.values().forEach(k -> Arrays.fill(k, (byte) 0));
    keys.clear();
  }

  /**
   * A self-check for the hub's tests: opens {@code name} from {@code file} and prints whether
   * its SHA-256 equals the hex digest given; never the value itself.
   */
  public static void main(String[] args) throws Exception {
    SealedConfigProvider provider = new SealedConfigProvider();
    Map<String, Object> config = new HashMap<>();
    if (args.length > 3) {
      config.put("keys.file", args[3]);
    }
    provider.configure(config);
    String value;
    try {
      value = provider.get(args[0], Set.of(args[1])).data().get(args[1]);
    } catch (ConfigException e) {
      System.out.println("error: " + e.getMessage());
      System.exit(2);
      return;
    }
    byte[] digest =
        MessageDigest.getInstance("SHA-256").digest(value.getBytes(StandardCharsets.UTF_8));
    StringBuilder hex = new StringBuilder();
    for (byte b : digest) {
      hex.append(String.format("%02x", b));
    }
    System.out.println(hex.toString().equals(args[2]) ? "match" : "mismatch");
  }
}
